//! The report page: one self-contained HTML file with its pictures embedded as data URIs.

use super::records::RunRecords;
use base64::Engine;
use serde_json::Value;
use std::fmt::Write;

/// A picture of the report, or why it is missing.
pub struct Figure {
    /// Section heading.
    pub title: String,
    /// What it shows and how to read it.
    pub caption: String,
    /// The PNG, or the reason there is none.
    pub png: Result<Vec<u8>, String>,
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn percent(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |a| format!("{:.2}%", 100.0 * a))
}

fn number(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            if v != 0.0 && v.abs() < 1e-3 {
                format!("{v:.3e}")
            } else {
                format!("{v:.4}")
            }
        }
        Value::Null => "-".into(),
        other => escape(&other.to_string()),
    }
}

const STYLE: &str =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .7em;text-align:left}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.ours{font-weight:bold;background:#eef5ff}\
img{max-width:100%;border:1px solid #eee}p.caption{color:#555;max-width:75em}pre{background:#f7f7f7;padding:1em;overflow-x:auto}\
.warn{color:#a40}";

/// The whole report page.
pub fn page(r: &RunRecords, run_name: &str, figures: &[Figure]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>simclr report: {name}</title><style>{STYLE}</style></head><body>\n<h1>simclr run report: {name}</h1>\n",
        name = escape(run_name)
    );
    summary(&mut h, r);
    ladder(&mut h, r);
    for f in figures {
        let _ = write!(h, "<h2>{}</h2>\n<p class=\"caption\">{}</p>\n", escape(&f.title), escape(&f.caption));
        match &f.png {
            Ok(png) => {
                let data = base64::engine::general_purpose::STANDARD.encode(png);
                let _ = writeln!(h, "<img alt=\"{}\" src=\"data:image/png;base64,{data}\">", escape(&f.title));
            }
            Err(why) => {
                let _ = writeln!(h, "<p class=\"warn\">Not drawn: {}</p>", escape(why));
            }
        }
    }
    last_epoch(&mut h, r);
    let _ = write!(h, "<h2>Configuration (config.toml)</h2>\n<pre>{}</pre>\n</body></html>\n", escape(&r.config_text));
    h
}

fn summary(h: &mut String, r: &RunRecords) {
    let epochs = r.config.train.epochs;
    let done = r.epochs.last().and_then(|e| e["epoch"].as_u64()).unwrap_or(0);
    let last_step = r.steps.last().and_then(|s| s["step"].as_u64()).unwrap_or(0);
    let status = if r.complete() {
        format!("complete: {epochs} epochs, {last_step} steps")
    } else {
        format!("not finished: {done} of {epochs} epochs recorded, last recorded step {last_step} (continue with simclr pretrain --run-dir DIR --resume)")
    };
    let mut rows: Vec<(String, String)> = vec![("Status".into(), status)];
    if let Some(p) = r.probe("h") {
        rows.push(("Linear probe on h: test accuracy".into(), percent(&p["test_accuracy"])));
        rows.push(("Linear probe on h: train accuracy".into(), percent(&p["train_accuracy"])));
        rows.push(("Linear probe: chosen weight decay".into(), number(&p["weight_decay"])));
    } else {
        rows.push(("Linear probe on h".into(), "not run yet (simclr probe DIR)".into()));
    }
    for f in ["z", "pixels"] {
        if let Some(p) = r.probe(f) {
            rows.push((format!("Linear probe on {f}: test accuracy"), percent(&p["test_accuracy"])));
        }
    }
    if let Some(last) = r.epochs.last() {
        if last.get("knn_accuracy").is_some() {
            let best = r.per_epoch("knn_accuracy").into_iter().fold((0.0, 0.0), |b, p| if p.1 > b.1 { p } else { b });
            rows.push(("kNN accuracy, last epoch".into(), percent(&last["knn_accuracy"])));
            rows.push(("kNN accuracy, best epoch".into(), format!("{:.2}% (epoch {})", 100.0 * best.1, best.0)));
        }
    }
    if let (Some(s), Some(v)) = (r.epoch_mean("seconds"), r.epoch_mean("views_per_s")) {
        rows.push(("Time per epoch (mean)".into(), format!("{s:.1} s")));
        rows.push(("Training speed (mean)".into(), format!("{v:.0} views/s")));
        if let Some(m) = r.epoch_mean("monitor_seconds") {
            rows.push(("Monitors per epoch (mean)".into(), format!("{m:.2} s ({:.1}% of the epoch)", 100.0 * m / s)));
        }
    }
    if let Some(s) = r.probe("h").and_then(|p| p["seconds"].as_f64()) {
        rows.push(("Linear probe time".into(), format!("{s:.1} s")));
    }
    h.push_str("<h2>Summary</h2>\n<table>\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    h.push_str("</table>\n");
}

fn ladder(h: &mut String, r: &RunRecords) {
    h.push_str("<h2>Baseline ladder (linear probe, test accuracy)</h2>\n");
    let Some(rows) = r.baselines.as_ref().and_then(|b| b["rows"].as_array()) else {
        h.push_str("<p>Not measured yet: <code>simclr baselines DIR</code> probes raw pixels, an untrained encoder and a supervised one beside this run.</p>\n");
        return;
    };
    let mut table: Vec<(f64, String)> = rows
        .iter()
        .map(|row| {
            let acc = row["test_accuracy"].as_f64().unwrap_or(f64::NAN);
            let line = format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                escape(row["name"].as_str().unwrap_or("?")),
                number(&row["dim"]),
                percent(&row["train_accuracy"]),
                percent(&row["test_accuracy"]),
                escape(row["note"].as_str().unwrap_or(""))
            );
            (acc, line)
        })
        .collect();
    if let Some(p) = r.probe("h") {
        let line = format!(
            "<tr class=\"ours\"><td>SimCLR (this run)</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>self-supervised, h</td></tr>",
            number(&p["dim"]),
            percent(&p["train_accuracy"]),
            percent(&p["test_accuracy"])
        );
        table.push((p["test_accuracy"].as_f64().unwrap_or(f64::NAN), line));
    }
    table.sort_by(|a, b| a.0.total_cmp(&b.0));
    h.push_str("<table>\n<tr><th>features</th><th>dim</th><th>train</th><th>test</th><th>note</th></tr>\n");
    for (_, line) in table {
        h.push_str(&line);
        h.push('\n');
    }
    h.push_str("</table>\n");
}

fn last_epoch(h: &mut String, r: &RunRecords) {
    let Some(last) = r.epochs.last().and_then(Value::as_object) else { return };
    let _ = writeln!(h, "<h2>Last epoch record (epoch {})</h2>\n<table>", number(&last["epoch"]));
    for (k, v) in last.iter().filter(|(k, _)| *k != "kind") {
        let _ = writeln!(h, "<tr><th>{}</th><td class=\"n\">{}</td></tr>", escape(k), number(v));
    }
    h.push_str("</table>\n<p class=\"caption\">All records: metrics.jsonl (the source of truth) and metrics.csv (epoch records).</p>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }
}
