//! What the commands print: one JSON object (`--json`) or plain lines, for a plan and for
//! what `create` and `vol-create` did or would do.

use serde_json::{Value, json};

use crate::boundary::Mode;
use crate::parted::Partition;
use crate::placement::Placement;
use crate::volume::{VolReport, Volume};

/// The plan as a JSON object, with `extra`'s fields added (device, what was created, ...).
pub fn plan_json(p: &Placement, extra: Value) -> Value {
    let r = &p.request;
    let mut v = json!({
        "mode": r.mode,
        "label": r.label,
        "type": r.part_type,
        "capacity": r.capacity,
        "start": p.plan.start,
        "end": p.plan.end,
        "size": p.plan.size(),
        "slack": p.slack() as i64,
        "cylinder_size": r.cylinder_size,
        "sector_size": r.sector_size,
        "extent": p.extent(),
    });
    if let (Some(m), Value::Object(x)) = (v.as_object_mut(), extra) {
        m.extend(x);
    }
    v
}

/// The plan in two lines: the partition, then the extent it goes into.
pub fn plan_text(p: &Placement) -> String {
    let r = &p.request;
    let ext = p.extent();
    format!(
        "{} partition on {} label ({} mode): start {} end {} (inclusive), {} bytes for {} requested ({:+} bytes)\n\
         free extent {}-{} ({} bytes), cylinder {} bytes",
        r.part_type.name(),
        r.label,
        match r.mode {
            Mode::Libvirt => "libvirt",
            Mode::Exact => "exact",
        },
        p.plan.start,
        p.plan.end,
        p.plan.size(),
        r.capacity,
        p.slack(),
        ext.start,
        ext.end,
        ext.size(),
        r.cylinder_size
    )
}

/// `extra` fields for a partition created and read back from the table.
pub fn created_json(part: &Partition) -> Value {
    json!({"number": part.number, "created": {"start": part.start, "end": part.end}})
}

impl VolReport {
    pub fn json(&self) -> Value {
        let mut extra = json!({"pool": self.pool, "device": self.device});
        match &self.volume {
            Volume::Planned { name, command } => {
                extra["name"] = name.clone().into();
                extra["dry_run"] = true.into();
                extra["command"] = command.clone().into();
            }
            Volume::Created {
                name,
                path,
                capacity,
                partition,
            } => {
                extra["name"] = name.clone().into();
                if let (Some(m), Value::Object(c)) =
                    (extra.as_object_mut(), created_json(partition))
                {
                    m.extend(c);
                }
                extra["volume"] = json!({"name": name, "path": path, "capacity": capacity,
                    "start": partition.start, "end": partition.end});
            }
        }
        plan_json(&self.placement, extra)
    }

    pub fn text(&self) -> String {
        let last = match &self.volume {
            Volume::Planned { name, command } => format!(
                "dry run, would create volume {name} in pool {}: {command}",
                self.pool
            ),
            Volume::Created {
                name,
                path,
                capacity,
                partition: p,
            } => format!(
                "created volume {name} in pool {}: {path}, {capacity} bytes, partition {} ({}-{})",
                self.pool, p.number, p.start, p.end
            ),
        };
        format!("{}\n{last}", plan_text(&self.placement))
    }
}
