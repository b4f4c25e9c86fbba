//! The report's pictures, made from a run's records (and, for the map, its encoder).

use super::plot::{confusion_matrix, line_panels, scatter_panels, Panel, ScatterPanel, Series, Style};
use super::records::RunRecords;
use crate::augment::AugmentConfig;
use crate::data::Dataset;
use crate::eval::features::{encode, Features};
use crate::eval::geometry::{COLLAPSE_RANK, COLLAPSE_SPREAD};
use crate::eval::map2d::{pca_2d, tsne_2d, tsne_min_points};
use crate::model::net::Net;
use anyhow::{bail, Result};
use serde_json::Value;

/// Pixels of one chart panel.
const PANEL: (u32, u32) = (440, 320);

fn series(name: &str, points: Vec<(f64, f64)>, color: usize, style: Style) -> Series {
    Series { name: name.into(), points, color, style }
}

fn panel(title: &str, x_label: &str, y_label: &str, series: Vec<Series>) -> Panel {
    Panel { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), series, integer_x: x_label == "epoch" }
}

/// Loss per step and per epoch, the learning rate, and the InfoNCE bound, against the step.
pub fn training_curves(r: &RunRecords) -> Result<Vec<u8>> {
    // Epoch records carry their last step, so both share the step axis.
    let epoch_at_step = |key: &str| r.epochs.iter().filter_map(|e| Some((e["step"].as_f64()?, e[key].as_f64()?))).collect();
    let loss = panel(
        "NT-Xent loss",
        "step",
        "loss",
        vec![
            series("per step", r.per_step("loss"), 0, Style::Faint),
            series("epoch mean", epoch_at_step("loss"), 0, Style::LineWithMarkers),
        ],
    );
    let lr = panel("Learning rate", "step", "lr", vec![series("warm-up + cosine", r.per_step("lr"), 1, Style::Line)]);
    let mi = panel(
        "InfoNCE bound log(2N-1) - loss",
        "step",
        "nats",
        vec![series("epoch mean", epoch_at_step("mi_lower_bound"), 2, Style::LineWithMarkers)],
    );
    line_panels(&[loss, lr, mi], PANEL)
}

fn test_accuracy(v: &Value) -> Option<f64> {
    v["test_accuracy"].as_f64().map(|a| 100.0 * a)
}

/// kNN accuracy per epoch, the final linear probe, and the baselines as reference levels.
pub fn accuracy_curves(r: &RunRecords) -> Result<Vec<u8>> {
    let knn: Vec<(f64, f64)> = r.per_epoch("knn_accuracy").into_iter().map(|(e, a)| (e, 100.0 * a)).collect();
    let last_epoch = r.epochs.last().and_then(|e| e["epoch"].as_f64()).unwrap_or(r.config.train.epochs as f64);
    let span = |y: f64| vec![(1.0f64.min(last_epoch), y), (last_epoch, y)];
    let mut s = vec![series("kNN on h (held-out images)", knn, 0, Style::LineWithMarkers)];
    if let Some(acc) = r.probe("h").and_then(test_accuracy) {
        s.push(series("linear probe on h (end)", vec![(last_epoch, acc)], 3, Style::Markers));
    }
    if let Some(rows) = r.baselines.as_ref().and_then(|b| b["rows"].as_array()) {
        for (i, row) in rows.iter().enumerate() {
            if let (Some(name), Some(acc)) = (row["name"].as_str(), test_accuracy(row)) {
                s.push(series(&format!("probe: {name}"), span(acc), [7, 1, 2, 4][i % 4], Style::Dashed));
            }
        }
    }
    line_panels(&[panel("Test accuracy", "epoch", "accuracy (%)", s)], (2 * PANEL.0, PANEL.1))
}

/// Alignment, uniformity, spread and effective rank of held-out positive pairs per epoch.
pub fn geometry_curves(r: &RunRecords) -> Result<Vec<u8>> {
    let one =
        |title: &str, key: &str, color| panel(title, "epoch", key, vec![series(key, r.per_epoch(key), color, Style::LineWithMarkers)]);
    // The collapse monitors with their warning thresholds.
    let with_threshold = |title: &str, key: &str, color, threshold: f64| {
        let mut p = one(title, key, color);
        let points = &p.series[0].points;
        if let (Some(first), Some(last)) = (points.first().copied(), points.last().copied()) {
            p.series.push(series("collapse warning", vec![(first.0, threshold), (last.0, threshold)], 3, Style::Dashed));
        }
        p
    };
    let panels = [
        one("Alignment (lower: positives closer)", "alignment", 0),
        one("Uniformity (lower: more spread out)", "uniformity", 1),
        with_threshold("Spread (collapse monitor)", "spread", 2, COLLAPSE_SPREAD),
        with_threshold("Effective rank (collapse monitor)", "effective_rank", 4, COLLAPSE_RANK),
    ];
    line_panels(&panels, (380, PANEL.1))
}

/// Names for `classes` classes: the dataset's, else the class numbers.
pub fn class_names(ds: &Dataset, classes: usize) -> Vec<String> {
    match &ds.class_names {
        Some(n) if n.len() >= classes => n[..classes].to_vec(),
        _ => (0..classes).map(|c| c.to_string()).collect(),
    }
}

/// Test images drawn on the 2-D maps.
pub const MAP_POINTS: usize = 2000;

/// PCA and t-SNE maps of h for the first [`MAP_POINTS`] labelled images of `ds`.
pub fn representation_map(net: &mut Net<f32>, aug: &AugmentConfig, ds: &Dataset) -> Result<Vec<u8>> {
    let ds = ds.take(MAP_POINTS);
    let Some(labels) = ds.labels.clone() else { bail!("the images have no labels to colour the map by") };
    if ds.len() < tsne_min_points() {
        bail!("the map needs at least {} test images, there are {}", tsne_min_points(), ds.len());
    }
    let h = encode(net, aug, &ds, Features::H)?;
    let names = class_names(&ds, ds.num_classes().unwrap_or(1));
    let panels = [
        ScatterPanel { title: "PCA of h".into(), axes: ("PC 1".into(), "PC 2".into()), points: pca_2d(&h)?, classes: labels.clone() },
        ScatterPanel { title: "t-SNE of h".into(), axes: (String::new(), String::new()), points: tsne_2d(&h)?, classes: labels },
    ];
    scatter_panels(&panels, &names, (520, 500))
}

/// The confusion matrix of a probe record that carries one.
pub fn probe_confusion(probe: &Value) -> Option<Result<Vec<u8>>> {
    let matrix: Vec<Vec<u64>> = probe["confusion"]
        .as_array()?
        .iter()
        .map(|r| r.as_array().map(|c| c.iter().filter_map(Value::as_u64).collect()))
        .collect::<Option<_>>()?;
    let names: Vec<String> = probe["class_names"].as_array()?.iter().filter_map(|n| n.as_str().map(String::from)).collect();
    let title = format!("Linear probe on {} (test set)", probe["features"].as_str().unwrap_or("h"));
    Some(confusion_matrix(&matrix, &names, &title))
}
