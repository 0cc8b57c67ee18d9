//! A small, bounded JSON scanner for the two files libvirt writes (`*.status`, `*.macs`).
//!
//! Why hand-written: the `.so` is loaded into sshd, sudo and systemd, so it carries no
//! serde. The files are a top-level array of small objects (entries). The scanner returns
//! every entry that parsed, and every syntax error with its byte offset; a damaged or
//! truncated file still yields its intact entries (libvirt's module fails every lookup
//! instead). Nesting depth is capped so hostile input cannot exhaust the stack.
//!
//! Entries are found the same way whether a file is read in full or a lookup's cold path
//! ([`crate::prefilter`]) looks only around the places where a name occurs, so that both
//! give the same entries for every file (doc/nss.md, "Malformed lease files"):
//!
//! - An *entry start* is a `{` outside strings whose previous non-blank byte is a `,` or
//!   `[` outside strings. Strings are found as a lexer from the file start sees them: a `"`
//!   opens and closes one, `\` escapes the next byte, and a line break always ends one
//!   (a string cannot hold a raw line break; so whether a byte is inside a string depends on
//!   its line only).
//! - After a syntax error, a missing `[` at the start or data after the closing `]`, the
//!   scan resumes at the next entry start; the entry the error was in is dropped.
//! - An object directly inside an array inside an entry is a syntax error (libvirt's
//!   formats have none; such a `{` is an entry start).
//!
//! Together: the objects the full scan returns are exactly the values parsed at the entry
//! starts that parse without error, so the value at the entry start nearest before a
//! name is the entry holding it, wherever it is in the file, whatever precedes it.

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
    /// Every syntax error, in file order; after each, the scan resumed at the next entry
    /// start (see the module doc).
    pub errors: Vec<SyntaxError>,
}

/// Scan `bytes` as a top-level JSON array. An empty or all-blank file is an empty array
/// (libvirt creates `.status` with 0 bytes). A UTF-8 BOM and a trailing comma are
/// tolerated, since hand-edited files have them and they are unambiguous.
pub fn parse_array(bytes: &[u8]) -> Array {
    let mut p = Parser { b: bytes, i: 0 };
    let mut out = Array::default();
    if p.b.starts_with(b"\xEF\xBB\xBF") {
        p.i = 3;
    }
    p.ws();
    if p.i == p.b.len() {
        return out;
    }
    let mut result = if p.peek() == Some(b'[') {
        p.i += 1;
        p.elements(&mut out)
    } else {
        Err(p.err("expected '[' at the start of the file"))
    };
    let mut lexer = Lexer::default();
    // Every resumption is past the previous one: the scan ends.
    let mut floor = 0;
    while let Err(e) = result {
        let from = e.offset.max(floor);
        out.errors.push(e);
        let Some(start) = lexer.next_entry_start(bytes, from) else {
            break;
        };
        p.i = start;
        floor = start + 1;
        result = p.elements(&mut out);
    }
    out
}

/// The value of the entry starting at `start` (an entry start, see the module doc) and
/// where it ends, as [`parse_array`] parses it there.
pub fn entry_at(bytes: &[u8], start: usize) -> Result<(Value, usize), SyntaxError> {
    let mut p = Parser { b: bytes, i: start };
    let v = p.value(1)?;
    Ok((v, p.i))
}

/// The strings of a file as the module doc defines them, seen from the file start, and the
/// entry starts they imply.
#[derive(Debug, Default, Clone)]
pub struct Lexer {
    /// The next byte to look at.
    at: usize,
    in_string: bool,
    escaped: bool,
    /// The last non-blank byte so far, and whether it was outside strings (quotes count as
    /// inside).
    last: Option<(u8, bool)>,
}

impl Lexer {
    /// A lexer at the start of a line (of the file, or one after a line break: no string is
    /// open there), knowing nothing before it.
    pub fn at_line_start(at: usize) -> Lexer {
        Lexer {
            at,
            ..Lexer::default()
        }
    }

    /// Whether `c`, the next byte, is an entry start: `Some(true)`/`Some(false)`, or None
    /// when it is a `{` outside strings but no non-blank byte was seen before it.
    pub fn starts_entry(&self, c: u8) -> Option<bool> {
        if self.in_string || c != b'{' {
            return Some(false);
        }
        self.last
            .map(|(prev, outside)| outside && (prev == b',' || prev == b'['))
    }

    /// The last non-blank byte seen and whether it was outside strings.
    pub fn last(&self) -> Option<(u8, bool)> {
        self.last
    }

    /// Moves past `c`, the next byte.
    pub fn step(&mut self, c: u8) {
        self.at += 1;
        if c == b'\n' {
            self.in_string = false;
            self.escaped = false;
            return;
        }
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if c == b'\\' {
                self.escaped = true;
            } else if c == b'"' {
                self.in_string = false;
            }
            self.last = Some((c, false));
            return;
        }
        match c {
            b' ' | b'\t' | b'\r' => {}
            b'"' => {
                self.in_string = true;
                self.last = Some((c, false));
            }
            _ => self.last = Some((c, true)),
        }
    }

    /// The first entry start at or after `from` (the lexer only moves forward: `from` is at
    /// or after where the last call stopped).
    fn next_entry_start(&mut self, b: &[u8], from: usize) -> Option<usize> {
        while let Some(&c) = b.get(self.at) {
            if self.at >= from && self.starts_entry(c) == Some(true) {
                return Some(self.at);
            }
            self.step(c);
        }
        None
    }
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
}

impl Parser<'_> {
    /// The top-level array's elements from here (after its `[`, or at an entry start) to
    /// its closing `]` and the end of the file: Ok, or the first syntax error (the elements
    /// before it are in `out`).
    fn elements(&mut self, out: &mut Array) -> Result<(), SyntaxError> {
        loop {
            self.ws();
            match self.peek() {
                Some(b']') => {
                    self.i += 1;
                    self.ws();
                    if self.i != self.b.len() {
                        return Err(self.err("unexpected data after the closing ']'"));
                    }
                    return Ok(());
                }
                None => return Err(self.err("unexpected end of file inside the array")),
                _ => {}
            }
            let start = self.i;
            let v = self.value(1)?;
            out.elements.push((start, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {}
                None => return Err(self.err("unexpected end of file inside the array")),
                _ => return Err(self.err("expected ',' or ']' after an array element")),
            }
        }
    }

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

    /// An array inside an entry (the top-level one is [`Parser::elements`]).
    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let mut items = Vec::new();
        self.members(ARRAY, |p| {
            if p.peek() == Some(b'{') {
                // An entry start (see the module doc), not a member.
                return Err(p.err("an object inside an array inside an entry"));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_files_are_empty_arrays() {
        for input in [&b""[..], b"  \n", b"[]", b"[\n\n]\n", b"\xEF\xBB\xBF[]"] {
            let a = parse_array(input);
            assert!(a.elements.is_empty(), "{input:?}");
            assert_eq!(a.errors, vec![], "{input:?}");
        }
    }

    #[test]
    fn values_and_offsets() {
        let a = parse_array(
            br#"[ {"a": 1, "b": "x\u00e9\ud83d\ude00", "c": [true, null, -2.5e3]}, 7 ]"#,
        );
        assert_eq!(a.errors, vec![]);
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
        assert_eq!(a.errors, vec![]);
        assert_eq!(a.elements.len(), 2);
    }

    #[test]
    fn truncated_file_keeps_complete_elements() {
        let input = br#"[{"a": 1}, {"a": 2}, {"a": "#;
        let a = parse_array(input);
        assert_eq!(a.elements.len(), 2);
        assert_eq!(a.errors.len(), 1);
        assert_eq!(a.errors[0].offset, input.len());
    }

    #[test]
    fn invalid_utf8_string_is_a_value_not_a_syntax_error() {
        let a = parse_array(b"[\"\xff\xfe\", \"ok\"]");
        assert_eq!(a.errors, vec![]);
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
                a.errors.first().map(|e| e.offset),
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
        assert_eq!(a.errors[0].message, "nesting too deep");
    }

    /// The objects of the full scan are exactly the values at the entry starts that parse
    /// (the module doc's claim the cold path relies on), for every truncation of `input`.
    fn check_entry_starts(input: &[u8]) {
        for cut in 0..=input.len() {
            let b = &input[..cut];
            let full: Vec<(usize, Value)> = parse_array(b)
                .elements
                .into_iter()
                .filter(|(_, v)| matches!(v, Value::Obj(_)))
                .collect();
            let mut lexer = Lexer::default();
            let mut at_starts = Vec::new();
            let mut from = 0;
            while let Some(start) = lexer.next_entry_start(b, from) {
                if let Ok((v, _)) = entry_at(b, start) {
                    at_starts.push((start, v));
                }
                from = start + 1;
            }
            assert_eq!(full, at_starts, "{:?}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn objects_are_the_values_at_entry_starts() {
        let inputs: [&[u8]; 12] = [
            include_bytes!("../testdata/basic/virbr0.status"),
            include_bytes!("../testdata/basic/virbr0.macs"),
            include_bytes!("../testdata/damaged/bom.status"),
            include_bytes!("../testdata/damaged/cut.status"),
            include_bytes!("../testdata/damaged/extra.status"),
            include_bytes!("../testdata/damaged/latin1.status"),
            br#"[{"a": [1, {"b": null}], "c": -2.5e3, "d": true}, "s", 7, [], {}, false,]"#,
            b"[{\"k\xff\": 1}, {\"ok\": \"v\xff\"}, {\"x\": \"a\nb\"}, {\"y\": 1}]",
            br#"[{"h": "x\u0041"}, {"h": "\"}"}, {"h": "\q"}, {"h": "[{"}, {"i": 1}]"#,
            br#"[{"a": 1} {"b": 2}, x, {"c": {"d": [{"e": 1}]}}, [{"f": 1}], {"g": 1}] , {"h": 1}"#,
            b"{\"a\": 1}, [{\"b\": \"un\nterminated}, {\"c\": 1}\n,{\"d\": \"\\\n{\"e\": 1}]",
            b"\xEF\xBB\xBF[{\"a\": 1},\n\n  {\"b\": 2}\n  {\"c\": 3},\t{\"d\": tru}, {\"e\": 4}]",
        ];
        for input in inputs {
            check_entry_starts(input);
        }
    }

    #[test]
    fn a_syntax_error_drops_only_its_entry() {
        let a = parse_array(
            br#"[{"a": 1}, {"b": 2 "x": 3}, {"c": 3}, {"d": [{"e": 4}]}, {"f": 5}] tail, {"g": 6}"#,
        );
        let keys: Vec<&str> = a
            .elements
            .iter()
            .filter_map(|(_, v)| match v {
                Value::Obj(f) => Some(f[0].0.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(keys, vec!["a", "c", "e", "f", "g"]);
        let messages: Vec<&str> = a.errors.iter().map(|e| e.message).collect();
        assert_eq!(
            messages,
            vec![
                "expected ',' or '}' in an object",
                "an object inside an array inside an entry",
                // `]` after {"e": 4} closes the top-level array; `}` follows
                "unexpected data after the closing ']'",
                "unexpected data after the closing ']'",
                "unexpected end of file inside the array",
            ]
        );
    }

    #[test]
    fn large_integers() {
        let a = parse_array(b"[9223372036854775807, 9223372036854775808, -1]");
        assert_eq!(
            a.elements.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
            vec![Value::Int(i64::MAX), Value::OtherNumber, Value::Int(-1)]
        );
    }
}
