//! A small, bounded JSON scanner for the two files libvirt writes (`*.status`, `*.macs`).
//!
//! Why hand-written: the `.so` is loaded into sshd, sudo and systemd, so it carries no
//! serde. The files are a top-level array of small objects; the scanner returns every
//! element that parsed completely, plus the first syntax error with its byte offset, so a
//! truncated or damaged file still yields its intact entries (libvirt's module fails every
//! lookup instead). Nesting depth is capped so hostile input cannot exhaust the stack.

/// Deepest nesting accepted inside one array element (libvirt writes depth 2).
const MAX_DEPTH: usize = 32;

/// One JSON value. Strings that are not valid UTF-8 keep the offset of their opening quote,
/// so the entry holding them can be rejected (and explained) without failing the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number written as an integer that fits in `i64`.
    Int(i64),
    /// Any other number (fraction, exponent, out of `i64` range).
    OtherNumber,
    Str(Result<String, usize>),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

impl Value {
    /// The first value stored under `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A syntax error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: &'static str,
}

/// The elements of a top-level array, each with the byte offset where it starts.
#[derive(Debug, Default)]
pub struct Array {
    pub elements: Vec<(usize, Value)>,
    /// Set when the file is not a well-formed array; `elements` then holds the elements
    /// that were complete before the error.
    pub error: Option<SyntaxError>,
}

/// Scan `bytes` as a top-level JSON array. An empty or all-blank file is an empty array
/// (libvirt creates `.status` with 0 bytes). A UTF-8 BOM and a trailing comma are
/// tolerated, since hand-edited files have them and they are unambiguous.
pub fn parse_array(bytes: &[u8]) -> Array {
    scan_array(bytes, None)
}

/// What [`parse_array`] returns for the elements that contain one of `hits` (byte offsets,
/// ascending), without building the others: a lookup's cold path (lookup.rs) parses only
/// the entries where its name occurs. Every element up to the last hit is still checked
/// for syntax (without allocating) exactly as [`parse_array`] checks it, so a syntax error
/// before a hit drops that hit's element as it would drop it there; scanning stops after
/// the element holding the last hit, so a later error is not reported.
pub fn parse_array_containing(bytes: &[u8], hits: &[usize]) -> Array {
    scan_array(bytes, Some(hits))
}

fn scan_array(bytes: &[u8], hits: Option<&[usize]>) -> Array {
    // Skip mode checks every key's UTF-8 as the full parse does; an ASCII file (libvirt
    // writes ASCII but for unusual domain names) needs no check per key.
    let ascii = hits.is_some() && bytes.is_ascii();
    let mut p = Parser {
        b: bytes,
        i: 0,
        ascii,
    };
    let mut out = Array::default();
    if p.b.starts_with(b"\xEF\xBB\xBF") {
        p.i = 3;
    }
    p.ws();
    if p.i == p.b.len() {
        return out;
    }
    if p.peek() != Some(b'[') {
        out.error = Some(p.err("expected '[' at the start of the file"));
        return out;
    }
    p.i += 1;
    loop {
        p.ws();
        match p.peek() {
            Some(b']') => {
                p.i += 1;
                break;
            }
            None => {
                out.error = Some(p.err("unexpected end of file inside the array"));
                return out;
            }
            _ => {}
        }
        let start = p.i;
        let element = match hits {
            None => p.value(1).map(Some),
            Some(hits) => {
                // No hit at or after this element: nothing further can be wanted.
                if hits.last().is_none_or(|&last| last < start) {
                    return out;
                }
                p.skip_value(1).map(|()| {
                    let first = hits.partition_point(|&h| h < start);
                    if hits.get(first).is_some_and(|&h| h < p.i) {
                        // Checked just above, so this parse succeeds and ends at p.i.
                        let mut again = Parser {
                            b: bytes,
                            i: start,
                            ascii,
                        };
                        again.value(1).ok()
                    } else {
                        None
                    }
                })
            }
        };
        match element {
            Ok(Some(v)) => out.elements.push((start, v)),
            Ok(None) => {}
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
        p.ws();
        match p.peek() {
            Some(b',') => p.i += 1,
            Some(b']') => {
                p.i += 1;
                break;
            }
            None => {
                out.error = Some(p.err("unexpected end of file inside the array"));
                return out;
            }
            _ => {
                out.error = Some(p.err("expected ',' or ']' after an array element"));
                return out;
            }
        }
    }
    p.ws();
    if p.i != p.b.len() {
        out.error = Some(p.err("unexpected data after the closing ']'"));
    }
    out
}

/// What [`Parser::members`] needs to know of a bracket pair: its closing byte and the
/// errors it reports.
struct Brackets {
    close: u8,
    eof: &'static str,
    bad_separator: &'static str,
}

const ARRAY: &Brackets = &Brackets {
    close: b']',
    eof: "unexpected end of file inside an array",
    bad_separator: "expected ',' or ']' in an array",
};

const OBJECT: &Brackets = &Brackets {
    close: b'}',
    eof: "unexpected end of file inside an object",
    bad_separator: "expected ',' or '}' in an object",
};

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    /// All of `b` is ASCII (so every object key is valid UTF-8): set by the cold path.
    ascii: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn err(&self, message: &'static str) -> SyntaxError {
        SyntaxError {
            offset: self.i,
            message,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            None => Err(self.err("unexpected end of file, expected a value")),
            Some(_) => Err(self.err("unexpected character, expected a value")),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, SyntaxError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        if self.i == digits {
            return Err(self.err("invalid number"));
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.i += 1;
            let d = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            if self.i == d {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            let d = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            if self.i == d {
                return Err(self.err("invalid number"));
            }
        }
        if !integer {
            return Ok(Value::OtherNumber);
        }
        // The slice holds only ASCII '-' and digits, so it is valid UTF-8.
        let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
        Ok(text.parse::<i64>().map_or(Value::OtherNumber, Value::Int))
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let c = self
                .peek()
                .ok_or_else(|| self.err("truncated \\u escape"))?;
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| self.err("invalid \\u escape"))?;
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }

    /// A string; `Err(offset)` inside the Ok when its bytes are not valid UTF-8.
    fn string(&mut self) -> Result<Result<String, usize>, SyntaxError> {
        let start = self.i;
        self.i += 1; // opening quote
        // Fast path (every string libvirt writes): no escape before the closing quote, so
        // one allocation of the exact size instead of growing byte by byte.
        let body = &self.b[self.i..];
        if let Some(end) = body
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        {
            if body[end] == b'"' {
                self.i += end + 1;
                return Ok(std::str::from_utf8(&body[..end])
                    .map(str::to_owned)
                    .map_err(|_| start));
            }
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self
                .peek()
                .ok_or_else(|| self.err("unexpected end of file inside a string"))?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self
                        .peek()
                        .ok_or_else(|| self.err("unexpected end of file inside a string"))?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.b[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                } else {
                                    cp = 0xFFFD;
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.err("invalid escape in a string"));
                        }
                    }
                }
                0..=0x1f => {
                    self.i -= 1;
                    return Err(self.err("control character inside a string"));
                }
                _ => out.push(c),
            }
        }
        Ok(String::from_utf8(out).map_err(|_| start))
    }

    /// [`Parser::value`] without building the value (nothing allocated): the same
    /// syntax checks, the same errors at the same offsets, the same end position.
    fn skip_value(&mut self, depth: usize) -> Result<(), SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => self.skip_object(depth),
            Some(b'[') => self.skip_array(depth),
            Some(b'"') => self.skip_string(false),
            Some(b't') => self.literal(b"true", Value::Null).map(drop),
            Some(b'f') => self.literal(b"false", Value::Null).map(drop),
            Some(b'n') => self.literal(b"null", Value::Null).map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            None => Err(self.err("unexpected end of file, expected a value")),
            Some(_) => Err(self.err("unexpected character, expected a value")),
        }
    }

    /// [`Parser::string`] without building it; `key`: invalid UTF-8 is then a syntax
    /// error, as [`Parser::object`] makes it.
    fn skip_string(&mut self, key: bool) -> Result<(), SyntaxError> {
        let start = self.i;
        let key_error = SyntaxError {
            offset: start,
            message: "object key is not valid UTF-8",
        };
        let body = &self.b[start + 1..];
        let end = plain_run(body);
        if end < body.len() {
            let text = &body[..end];
            if body[end] == b'"' {
                if key && !self.ascii && std::str::from_utf8(text).is_err() {
                    return Err(key_error);
                }
                self.i = start + 1 + end + 1;
                return Ok(());
            }
        }
        // An escape, a control character or the end of the file: the general path decides
        // (allocates; the cold path never sees an escape, it parses such files in full).
        match self.string()? {
            Err(_) if key => Err(key_error),
            _ => Ok(()),
        }
    }

    fn skip_array(&mut self, depth: usize) -> Result<(), SyntaxError> {
        self.members(ARRAY, |p| p.skip_value(depth + 1))
    }

    fn skip_object(&mut self, depth: usize) -> Result<(), SyntaxError> {
        self.members(OBJECT, |p| {
            p.expect_key()?;
            p.skip_string(true)?;
            p.colon()?;
            p.skip_value(depth + 1)
        })
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let mut items = Vec::new();
        self.members(ARRAY, |p| {
            items.push(p.value(depth + 1)?);
            Ok(())
        })?;
        Ok(Value::Arr(items))
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let mut fields = Vec::new();
        self.members(OBJECT, |p| {
            p.expect_key()?;
            let key_at = p.i;
            let key = p.string()?.map_err(|_| SyntaxError {
                offset: key_at,
                message: "object key is not valid UTF-8",
            })?;
            p.colon()?;
            fields.push((key, p.value(depth + 1)?));
            Ok(())
        })?;
        Ok(Value::Obj(fields))
    }

    /// The walk shared by arrays and objects, built ([`Parser::array`]) or skipped
    /// ([`Parser::skip_array`]) alike, so both see the same syntax errors at the same
    /// offsets: the opening bracket, then `member` for each element, separated by commas
    /// (a trailing comma tolerated), up to the closing bracket.
    fn members(
        &mut self,
        brackets: &Brackets,
        mut member: impl FnMut(&mut Self) -> Result<(), SyntaxError>,
    ) -> Result<(), SyntaxError> {
        self.i += 1;
        loop {
            self.ws();
            if self.peek() == Some(brackets.close) {
                self.i += 1;
                return Ok(());
            }
            member(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == brackets.close => {}
                None => return Err(self.err(brackets.eof)),
                _ => return Err(self.err(brackets.bad_separator)),
            }
        }
    }

    /// At an object member: its key must start here.
    fn expect_key(&self) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(b'"') => Ok(()),
            None => Err(self.err("unexpected end of file inside an object")),
            _ => Err(self.err("expected a key in an object")),
        }
    }

    /// The `:` between an object key and its value, with the space around it.
    fn colon(&mut self) -> Result<(), SyntaxError> {
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.err("expected ':' after an object key"));
        }
        self.i += 1;
        self.ws();
        Ok(())
    }
}

/// How many bytes at the start of `b` may stand in a JSON string as they are: up to the
/// first `"`, `\\` or control character (below 0x20), or all of `b`. The cold path skips
/// every string before a hit with this: eight bytes per step (SWAR: a byte equal to `"` or
/// `\\`, or below 0x20, sets its high bit in `hit`; only the lowest set bit is exact, which
/// is the one taken), about a third of the instructions of a byte loop. The bytes are read
/// as little-endian on every target, so the lowest bit is the first byte on s390x too.
fn plain_run(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let x = u64::from_le_bytes(chunk);
        let hit = (zero_in(x ^ (ONES * u64::from(b'"')))
            | zero_in(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(b.len() - i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_files_are_empty_arrays() {
        for input in [&b""[..], b"  \n", b"[]", b"[\n\n]\n", b"\xEF\xBB\xBF[]"] {
            let a = parse_array(input);
            assert!(a.elements.is_empty(), "{input:?}");
            assert_eq!(a.error, None, "{input:?}");
        }
    }

    #[test]
    fn values_and_offsets() {
        let a = parse_array(
            br#"[ {"a": 1, "b": "x\u00e9\ud83d\ude00", "c": [true, null, -2.5e3]}, 7 ]"#,
        );
        assert_eq!(a.error, None);
        assert_eq!(a.elements.len(), 2);
        assert_eq!(a.elements[0].0, 2);
        let o = &a.elements[0].1;
        assert_eq!(o.get("a"), Some(&Value::Int(1)));
        assert_eq!(o.get("b"), Some(&Value::Str(Ok("xé😀".into()))));
        assert_eq!(
            o.get("c"),
            Some(&Value::Arr(vec![
                Value::Bool(true),
                Value::Null,
                Value::OtherNumber
            ]))
        );
        assert_eq!(a.elements[1].1, Value::Int(7));
    }

    #[test]
    fn trailing_comma_is_tolerated() {
        let a = parse_array(b"[1, 2,]");
        assert_eq!(a.error, None);
        assert_eq!(a.elements.len(), 2);
    }

    #[test]
    fn truncated_file_keeps_complete_elements() {
        let input = br#"[{"a": 1}, {"a": 2}, {"a": "#;
        let a = parse_array(input);
        assert_eq!(a.elements.len(), 2);
        let e = a.error.unwrap();
        assert_eq!(e.offset, input.len());
    }

    #[test]
    fn invalid_utf8_string_is_a_value_not_a_syntax_error() {
        let a = parse_array(b"[\"\xff\xfe\", \"ok\"]");
        assert_eq!(a.error, None);
        assert_eq!(a.elements[0].1, Value::Str(Err(1)));
        assert_eq!(a.elements[1].1, Value::Str(Ok("ok".into())));
    }

    #[test]
    fn syntax_errors_have_offsets() {
        for (input, off) in [
            (&b"{}"[..], 0),
            (b"[1 2]", 3),
            (b"[1] x", 4),
            (b"[\"a\nb\"]", 3),
            (b"[{\"a\" 1}]", 6),
            (b"[01x]", 3),
            (b"[tru]", 1),
        ] {
            let a = parse_array(input);
            assert_eq!(
                a.error.map(|e| e.offset),
                Some(off),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let mut s = String::from("[");
        s.push_str(&"[".repeat(100_000));
        let a = parse_array(s.as_bytes());
        assert_eq!(a.error.unwrap().message, "nesting too deep");
    }

    /// Every element of `bytes` as `parse_array` returns it, with the offset where it ends.
    fn spans(bytes: &[u8]) -> Vec<(usize, usize, Value)> {
        parse_array(bytes)
            .elements
            .into_iter()
            .map(|(start, v)| {
                let mut p = Parser {
                    b: bytes,
                    i: start,
                    ascii: false,
                };
                assert_eq!(p.value(1).as_ref(), Ok(&v));
                (start, p.i, v)
            })
            .collect()
    }

    /// The cold path's scan against the full one: for a hit at any byte offset, exactly
    /// the element holding it (if the full parse has one there); for hits everywhere,
    /// everything the full parse returns, error included.
    fn check_containing(bytes: &[u8]) {
        let full = parse_array(bytes);
        let every: Vec<usize> = (0..bytes.len()).collect();
        let all = parse_array_containing(bytes, &every);
        assert_eq!(
            all.elements,
            full.elements,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        if !bytes.is_empty() {
            assert_eq!(
                all.error,
                full.error,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let spans = spans(bytes);
        // (a stride on long inputs: checked at every truncation, this is quadratic)
        let stride = if bytes.len() > 300 { 7 } else { 1 };
        for h in (0..bytes.len()).step_by(stride) {
            let got = parse_array_containing(bytes, &[h]).elements;
            let want: Vec<(usize, Value)> = spans
                .iter()
                .filter(|(s, e, _)| (*s..*e).contains(&h))
                .map(|(s, _, v)| (*s, v.clone()))
                .collect();
            assert_eq!(got, want, "hit {h} in {:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn containing_matches_the_full_parse_at_every_offset_and_truncation() {
        let inputs: [&[u8]; 9] = [
            include_bytes!("../testdata/basic/virbr0.status"),
            include_bytes!("../testdata/basic/virbr0.macs"),
            include_bytes!("../testdata/damaged/bom.status"),
            include_bytes!("../testdata/damaged/cut.status"),
            include_bytes!("../testdata/damaged/extra.status"),
            include_bytes!("../testdata/damaged/latin1.status"),
            br#"[{"a": [1, {"b": null}], "c": -2.5e3, "d": true}, "s", 7, [], {}, false,]"#,
            b"[{\"k\xff\": 1}, {\"ok\": \"v\xff\"}, {\"x\": \"a\nb\"}]",
            br#"[{"h": "x\u0041"}, {"h": "\"}"}, {"h": "\q"}]"#,
        ];
        for input in inputs {
            // Every prefix: truncated files, errors at every possible place.
            for cut in 0..=input.len() {
                check_containing(&input[..cut]);
            }
        }
        // Trailing data after the array and too-deep nesting.
        check_containing(b"[1, 2] x");
        let mut deep = String::from("[1, ");
        deep.push_str(&"[".repeat(40));
        deep.push_str(&"]".repeat(40));
        deep.push_str(", 2]");
        check_containing(deep.as_bytes());
    }

    #[test]
    fn large_integers() {
        let a = parse_array(b"[9223372036854775807, 9223372036854775808, -1]");
        assert_eq!(
            a.elements.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
            vec![Value::Int(i64::MAX), Value::OtherNumber, Value::Int(-1)]
        );
    }

    #[test]
    fn plain_run_stops_where_a_byte_loop_does() {
        let reference = |b: &[u8]| {
            b.iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(b.len())
        };
        let specials = [b'"', b'\\', 0, 0x1f, b'\n'];
        let plain = [
            b'a', b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', 0x21, 0x5d, 0x9c, 0xdc,
        ];
        for len in 0..20 {
            for at in 0..=len {
                for &sp in &specials {
                    for &p in &plain {
                        let mut b = vec![p; len];
                        if at < len {
                            b[at] = sp;
                            // bytes after the first special one may be special too
                            if at + 1 < len {
                                b[at + 1] = b'"';
                            }
                        }
                        assert_eq!(plain_run(&b), reference(&b), "{b:?}");
                    }
                }
            }
        }
    }
}
