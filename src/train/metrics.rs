//! Metrics as JSON lines (`metrics.jsonl` in the run directory), one object per record.

use anyhow::{Context, Result};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Appends records to a JSON-lines file, flushing each line.
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `path` for appending. With `keep_through_step`, records of later steps (left by an
    /// interrupted run past its last checkpoint) are dropped first, so a resumed run's metrics
    /// match an uninterrupted one's.
    pub fn open(path: &Path, keep_through_step: Option<u64>) -> Result<Self> {
        if let Some(limit) = keep_through_step {
            if path.exists() {
                let kept: Vec<String> = BufReader::new(File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
                    .lines()
                    .map_while(|l| l.ok())
                    .filter(|l| {
                        serde_json::from_str::<Value>(l)
                            .ok()
                            .and_then(|v| v.get("step").and_then(Value::as_u64))
                            .is_some_and(|s| s <= limit)
                    })
                    .collect();
                let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
                crate::io::write_atomic(path, text.as_bytes())?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(MetricsWriter { path: path.to_path_buf(), file })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &Value) -> Result<()> {
        writeln!(self.file, "{record}").and_then(|_| self.file.flush()).with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Reads every record of a metrics file. A last line without its newline is a record a killed
/// run was writing when it died; it is left out.
pub fn read_metrics(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}: not a JSON record", path.display(), i + 1)))
        .collect()
}

/// Writes the epoch records of a metrics file as CSV (one row per epoch, one column per key,
/// keys sorted), atomically. The JSON lines stay the source of truth.
pub fn write_epoch_csv(jsonl: &Path, csv: &Path) -> Result<()> {
    let epochs: Vec<serde_json::Map<String, Value>> =
        read_metrics(jsonl)?.into_iter().filter(|r| r["kind"] == "epoch").filter_map(|r| r.as_object().cloned()).collect();
    let mut keys: Vec<&String> = epochs.iter().flat_map(|r| r.keys()).filter(|k| *k != "kind").collect();
    keys.sort();
    keys.dedup();
    let mut text = keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",") + "\n";
    for r in &epochs {
        let cells: Vec<String> = keys.iter().map(|k| r.get(*k).map(|v| v.to_string()).unwrap_or_default()).collect();
        text += &(cells.join(",") + "\n");
    }
    crate::io::write_atomic(csv, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn appends_and_truncates_past_a_step() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let mut w = MetricsWriter::open(&p, None).unwrap();
        for s in 1..=4 {
            w.write(&json!({"kind": "step", "step": s})).unwrap();
        }
        drop(w);
        let mut w = MetricsWriter::open(&p, Some(2)).unwrap();
        w.write(&json!({"kind": "step", "step": 3})).unwrap();
        let steps: Vec<u64> = read_metrics(&p).unwrap().iter().map(|v| v["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, vec![1, 2, 3]);
        // A record cut short by a kill is left out; a broken complete record is an error.
        std::fs::write(&p, "{\"step\": 1}\n{\"step\": 2}\n{\"st").unwrap();
        assert_eq!(read_metrics(&p).unwrap().len(), 2);
        std::fs::write(&p, "{\"step\": 1}\n{\"st\n").unwrap();
        assert!(format!("{:#}", read_metrics(&p).unwrap_err()).contains("m.jsonl:2"));
    }

    #[test]
    fn epoch_records_become_csv_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (p, csv) = (dir.path().join("m.jsonl"), dir.path().join("m.csv"));
        let mut w = MetricsWriter::open(&p, None).unwrap();
        w.write(&json!({"kind": "step", "step": 1, "loss": 9.0})).unwrap();
        w.write(&json!({"kind": "epoch", "step": 1, "epoch": 1, "loss": 4.5})).unwrap();
        w.write(&json!({"kind": "epoch", "step": 2, "epoch": 2, "loss": 4.25, "knn_accuracy": 0.5})).unwrap();
        write_epoch_csv(&p, &csv).unwrap();
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), "epoch,knn_accuracy,loss,step\n1,,4.5,1\n2,0.5,4.25,2\n");
    }
}
