//! The run report: pictures of how a run trained and what it learned, written as PNG files under
//! `plots/` and embedded in a self-contained `report.html` in the run directory.

pub mod augment_grid;
pub mod figures;
pub mod html;
pub mod plot;
pub mod records;

use crate::checkpoint::load_net;
use crate::data::source::Splits;
use crate::io::write_atomic;
use crate::train::run_dir::RunDir;
use anyhow::{Context, Result};
use html::Figure;
use records::RunRecords;

/// A figure's PNG file name under `plots/` with its title and caption.
fn figure(title: &str, caption: &str, png: Result<Vec<u8>>) -> (String, Figure) {
    let file =
        title.to_lowercase().split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join("-") + ".png";
    (file, Figure { title: title.into(), caption: caption.into(), png: png.map_err(|e| format!("{e:#}")) })
}

/// Writes `plots/*.png` and `report.html` for the run in `dir`. `data` (the run's dataset) is
/// needed for the 2-D map and the augmentation grid; without it they are left out with a note.
/// `map` false leaves out the map (its t-SNE takes seconds), e.g. when a run is being stopped.
/// Works on unfinished runs: it shows what has been recorded.
pub fn write_report(dir: &RunDir, data: Option<&Splits>, map: bool) -> Result<()> {
    let r = RunRecords::read(dir)?;
    let cfg = &r.config;
    let mut figures = vec![
        figure(
            "Training curves",
            "The NT-Xent loss of every step (pale) and its epoch mean, the learning rate (linear warm-up, then cosine decay), and the \
             InfoNCE lower bound on the mutual information between the two views, log(2N-1) minus the loss.",
            figures::training_curves(&r),
        ),
        figure(
            "Accuracy",
            "Weighted kNN accuracy of held-out images on h after each epoch (cosine similarity, votes weighted by exp(sim/t)), the \
             linear probe on h at the end, and the baselines' linear probes as dashed levels when measured.",
            figures::accuracy_curves(&r),
        ),
        figure(
            "Representation geometry",
            "Wang and Isola's measures on L2-normalised h of held-out positive pairs: alignment E||f(x)-f(x+)||^2 (lower is better) and \
             uniformity log E exp(-2||f(x)-f(y)||^2) (lower is better). Two collapse monitors: spread, the mean per-dimension \
             standard deviation times sqrt(dim), and the effective rank (participation ratio of the covariance eigenvalues); \
             both tend to 0 when the representation collapses.",
            figures::geometry_curves(&r),
        ),
    ];
    let test = data.and_then(|s| s.test.as_ref());
    let map = match (test, dir.model().exists()) {
        _ if !map => Err(anyhow::anyhow!("left out while the run was stopping; `simclr report DIR` draws it")),
        (_, false) => Err(anyhow::anyhow!("no checkpoint (model.safetensors) yet")),
        (None, _) => Err(anyhow::anyhow!("the dataset's test split is not available")),
        (Some(test), true) => load_net(&dir.model()).and_then(|mut net| figures::representation_map(&mut net, &cfg.augment, test)),
    };
    figures.push(figure(
        "Map of the representation",
        &format!(
            "h of the first {} test images (evaluation view, L2-normalised), projected by PCA and by t-SNE (perplexity 30), coloured by \
             their true class. Labels were never used in pre-training.",
            figures::MAP_POINTS
        ),
        map,
    ));
    if let Some(p) = r.probe("h") {
        if let Some(png) = figures::probe_confusion(p) {
            figures.push(figure(
                "Confusion matrix of the linear probe",
                "Rows: true class; columns: the probe's prediction; cells shaded by their share of the row; recall per class on the right.",
                png,
            ));
        }
    }
    let grid = match data {
        Some(s) => augment_grid::augment_grid(&cfg.augment, &s.train.take(8), cfg.seed, 8, 3),
        None => Err(anyhow::anyhow!("the dataset is not available")),
    };
    figures.push(figure(
        "Augmentations",
        "Each row is a training image: first its evaluation view, then the views pre-training drew from it (columns 2k and 2k+1 are \
         the positive pair of epoch k+1).",
        grid,
    ));

    let plots = dir.plots();
    std::fs::create_dir_all(&plots).with_context(|| format!("cannot create {}", plots.display()))?;
    for (file, f) in &figures {
        if let Ok(png) = &f.png {
            write_atomic(&plots.join(file), png)?;
        }
    }
    let name = dir.root.file_name().map_or_else(|| dir.root.display().to_string(), |n| n.to_string_lossy().into_owned());
    let figures: Vec<Figure> = figures.into_iter().map(|(_, f)| f).collect();
    write_atomic(&dir.report(), html::page(&r, &name, &figures).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use serde_json::json;

    #[test]
    fn an_unfinished_run_without_data_gets_its_curves_and_notes_for_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir { root: tmp.path().to_path_buf() };
        let cfg = RunConfig::default();
        std::fs::write(dir.config(), cfg.to_toml().unwrap()).unwrap();
        let mut lines = String::new();
        for step in 1..=20u64 {
            lines += &format!(
                "{}\n",
                json!({"kind": "step", "step": step, "epoch": 1 + (step - 1) / 10, "loss": 6.0 - step as f64 * 0.05, "lr": 1e-4})
            );
            if step % 10 == 0 {
                let e = json!({"kind": "epoch", "step": step, "epoch": step / 10, "loss": 5.5, "knn_accuracy": 0.7, "alignment": 0.4,
                    "uniformity": -1.5, "spread": 0.5, "effective_rank": 9.0, "mi_lower_bound": 1.0, "seconds": 40.0, "views_per_s": 2800.0});
                lines += &format!("{e}\n");
            }
        }
        std::fs::write(dir.metrics(), lines).unwrap();
        write_report(&dir, None, true).unwrap();
        let page = std::fs::read_to_string(dir.report()).unwrap();
        assert!(page.contains(&format!("2 of {} epochs recorded", cfg.train.epochs)), "status missing");
        assert_eq!(page.matches("data:image/png;base64,").count(), 3, "the three charts");
        assert!(page.contains("Not drawn: no checkpoint") && page.contains("Not drawn: the dataset is not available"));
        assert!(page.contains("simclr baselines DIR") && page.contains("70.00%"));
        for png in ["training-curves.png", "accuracy.png", "representation-geometry.png"] {
            assert!(dir.plots().join(png).is_file(), "{png}");
        }
        // A config that no longer parses is named in the error.
        std::fs::write(dir.config(), "epochs = []").unwrap();
        assert!(format!("{:#}", write_report(&dir, None, true).unwrap_err()).contains("config.toml"));
    }
}
