//! Charts as PNG bytes, drawn with plotters into an RGB buffer: line charts, class-coloured
//! scatter maps and confusion matrices. The font is embedded, so nothing depends on the system.

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle, FontTransform};
use std::sync::OnceLock;

/// DejaVu Sans, Latin subset (see assets/fonts/LICENSE).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

/// The ten colours of matplotlib's "tab10" cycle, so classes look as they do in Python plots.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn draw_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the chart: {e}")
}

fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        bail!("the embedded font cannot be read")
    }
}

/// Draws `w` x `h` pixels with `draw` on a white canvas and encodes them as PNG.
fn render(w: u32, h: u32, draw: impl FnOnce(&Area) -> Result<()>) -> Result<Vec<u8>> {
    ensure_font()?;
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    crate::io::png_rgb(&rgb, w, h)
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A solid line.
    Line,
    /// A thin, pale line (noisy per-step values behind their average).
    Faint,
    /// A solid line with a dot at every point.
    LineWithMarkers,
    /// Large dots only.
    Markers,
    /// A dashed line (reference levels).
    Dashed,
}

/// One named series of (x, y) points.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
    /// Index into [`PALETTE`].
    pub color: usize,
    /// How to draw it.
    pub style: Style,
}

/// One chart of a line figure.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// Horizontal axis label.
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
    /// What to draw.
    pub series: Vec<Series>,
    /// Whether x takes whole numbers only (epochs): ticks between them are left unlabelled.
    pub integer_x: bool,
}

/// The padded range covering `values` (a unit range around a lone value).
fn padded_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if lo > hi {
        return None;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
    Some((lo - pad, hi + pad))
}

/// A tick label: plain decimals with as few digits as distinguish round ticks, else scientific.
fn format_tick(v: f64) -> String {
    let a = v.abs();
    if a < 1e-12 || (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.into()
        }
    } else {
        format!("{v:.1e}")
    }
}

/// Draws a series' legend sample at (x, y) (its left end, vertically centred).
fn draw_legend_sample(area: &Area, s: &Series, (x, y): (i32, i32)) -> Result<()> {
    let color = PALETTE[s.color % PALETTE.len()];
    let line = |from: i32, to: i32, style: ShapeStyle| area.draw(&PathElement::new(vec![(from, y), (to, y)], style)).map_err(draw_err);
    match s.style {
        Style::Line => line(x, x + 24, color.stroke_width(2)),
        Style::Faint => line(x, x + 24, color.mix(0.3).stroke_width(2)),
        Style::LineWithMarkers => {
            line(x, x + 24, color.stroke_width(2))?;
            area.draw(&Circle::new((x + 12, y), 3, color.filled())).map_err(draw_err)
        }
        Style::Markers => area.draw(&Circle::new((x + 12, y), 5, color.filled())).map_err(draw_err),
        Style::Dashed => {
            line(x, x + 9, color.stroke_width(2))?;
            line(x + 15, x + 24, color.stroke_width(2))
        }
    }
}

/// Height of a legend row, in pixels.
const LEGEND_ROW: i32 = 20;

/// Lays out the legend entries of `series` in rows no wider than `width`: (series index, x) per
/// entry, one list per row.
fn legend_layout(area: &Area, series: &[Series], width: i32) -> Result<Vec<Vec<(usize, i32)>>> {
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut x = 70;
    for (i, s) in series.iter().enumerate() {
        let text_w = area.estimate_text_size(&s.name, &TextStyle::from((FAMILY, 13).into_font())).map_err(draw_err)?.0 as i32;
        let entry = 30 + text_w + 22;
        if x + entry > width && !rows.last().is_some_and(Vec::is_empty) {
            rows.push(Vec::new());
            x = 70;
        }
        rows.last_mut().expect("a row").push((i, x));
        x += entry;
    }
    Ok(rows)
}

fn draw_panel(area: &Area, p: &Panel) -> Result<()> {
    let finite = |s: &Series| s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect::<Vec<_>>();
    let all: Vec<(f64, f64)> = p.series.iter().flat_map(finite).collect();
    let (Some(xr), Some(yr)) = (padded_range(all.iter().map(|p| p.0)), padded_range(all.iter().map(|p| p.1))) else {
        area.titled(&p.title, (FAMILY, 20))
            .map_err(draw_err)?
            .draw(&Text::new("nothing recorded (yet)", (20, 20), (FAMILY, 15)))
            .map_err(draw_err)?;
        return Ok(());
    };
    // A lone series is named by the title; several get a legend below the chart, off the data.
    let (w, h) = area.dim_in_pixel();
    let layout = if p.series.len() > 1 { legend_layout(area, &p.series, w as i32)? } else { Vec::new() };
    let legend_h = if layout.is_empty() { 0 } else { layout.len() as i32 * LEGEND_ROW + 6 };
    let (plot, legend) = area.split_vertically(h as i32 - legend_h);
    for (r, row) in layout.iter().enumerate() {
        let y = r as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        for &(i, x) in row {
            draw_legend_sample(&legend, &p.series[i], (x, y))?;
            let style = TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
            legend.draw(&Text::new(p.series[i].name.clone(), (x + 30, y), style)).map_err(draw_err)?;
        }
    }
    let mut chart = ChartBuilder::on(&plot)
        .caption(&p.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(220, 220, 220))
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|x: &f64| if !p.integer_x || (x - x.round()).abs() < 1e-9 { format_tick(*x) } else { String::new() })
        .y_label_formatter(&|y: &f64| format_tick(*y))
        .draw()
        .map_err(draw_err)?;
    for s in &p.series {
        let color = PALETTE[s.color % PALETTE.len()];
        let pts = finite(s);
        match s.style {
            Style::Line => chart.draw_series(LineSeries::new(pts, color.stroke_width(2))).map_err(draw_err)?,
            Style::Faint => chart.draw_series(LineSeries::new(pts, color.mix(0.3).stroke_width(1))).map_err(draw_err)?,
            Style::LineWithMarkers => {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(draw_err)?;
                chart.draw_series(LineSeries::new(pts, color.stroke_width(2))).map_err(draw_err)?
            }
            Style::Markers => chart.draw_series(pts.iter().map(|&p| Circle::new(p, 6, color.filled()))).map_err(draw_err)?,
            Style::Dashed => chart.draw_series(DashedLineSeries::new(pts, 8, 5, color.stroke_width(2))).map_err(draw_err)?,
        };
    }
    Ok(())
}

/// Line charts side by side, each `panel_size` pixels, as one PNG.
pub fn line_panels(panels: &[Panel], panel_size: (u32, u32)) -> Result<Vec<u8>> {
    let w = panel_size.0 * panels.len().max(1) as u32;
    render(w, panel_size.1, |root| {
        for (area, p) in root.split_evenly((1, panels.len().max(1))).iter().zip(panels) {
            draw_panel(area, p)?;
        }
        Ok(())
    })
}

/// One class-coloured 2-D scatter.
#[derive(Clone, Debug)]
pub struct ScatterPanel {
    /// Title above the map.
    pub title: String,
    /// Axis labels (horizontal, vertical).
    pub axes: (String, String),
    /// The points.
    pub points: Vec<[f64; 2]>,
    /// The class of each point.
    pub classes: Vec<u16>,
}

/// Class-coloured scatter maps side by side (`panel_size` pixels each) with one legend of
/// `class_names` on the right, as one PNG.
pub fn scatter_panels(panels: &[ScatterPanel], class_names: &[String], panel_size: (u32, u32)) -> Result<Vec<u8>> {
    const LEGEND: u32 = 150;
    let w = panel_size.0 * panels.len().max(1) as u32 + LEGEND;
    render(w, panel_size.1, |root| {
        let (maps, legend) = root.split_horizontally(w - LEGEND);
        for (area, p) in maps.split_evenly((1, panels.len().max(1))).iter().zip(panels) {
            let (Some(xr), Some(yr)) = (padded_range(p.points.iter().map(|q| q[0])), padded_range(p.points.iter().map(|q| q[1]))) else {
                continue;
            };
            let mut chart = ChartBuilder::on(area)
                .caption(&p.title, (FAMILY, 20))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(30)
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(0)
                .y_labels(0)
                .x_desc(&p.axes.0)
                .y_desc(&p.axes.1)
                .axis_desc_style((FAMILY, 14))
                .draw()
                .map_err(draw_err)?;
            let dots =
                p.points.iter().zip(&p.classes).map(|(q, &c)| Circle::new((q[0], q[1]), 2, PALETTE[c as usize % 10].mix(0.75).filled()));
            chart.draw_series(dots).map_err(draw_err)?;
        }
        for (i, name) in class_names.iter().enumerate() {
            let y = 60 + 24 * i as i32;
            legend.draw(&Circle::new((14, y), 6, PALETTE[i % 10].filled())).map_err(draw_err)?;
            legend
                .draw(&Text::new(name.clone(), (28, y), TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center))))
                .map_err(draw_err)?;
        }
        Ok(())
    })
}

/// A confusion matrix (`matrix[true][predicted]` counts) with class names, cells shaded by the
/// share of their row, and each class's recall on the right, as one PNG.
pub fn confusion_matrix(matrix: &[Vec<u64>], class_names: &[String], title: &str) -> Result<Vec<u8>> {
    let k = matrix.len();
    if k == 0 || matrix.iter().any(|r| r.len() != k) || class_names.len() != k {
        bail!("confusion matrix: expected a square matrix with one name per class");
    }
    let (cell, left, top, right, bottom) = (48i32, 130i32, 150i32, 70i32, 20i32);
    let (w, h) = ((left + k as i32 * cell + right) as u32, (top + k as i32 * cell + bottom) as u32);
    render(w, h, |root| {
        let centred = |size: u32| TextStyle::from((FAMILY, size).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new(title.to_string(), (w as i32 / 2, 16), centred(18))).map_err(draw_err)?;
        root.draw(&Text::new("predicted class", (left + k as i32 * cell / 2, 40), centred(14))).map_err(draw_err)?;
        root.draw(&Text::new("true class", (14, top + k as i32 * cell / 2), centred(14).transform(FontTransform::Rotate270)))
            .map_err(draw_err)?;
        root.draw(&Text::new("recall", (left + k as i32 * cell + right / 2, top - 12), centred(13))).map_err(draw_err)?;
        for (i, name) in class_names.iter().enumerate() {
            let mid = i as i32 * cell + cell / 2;
            let rotated =
                TextStyle::from((FAMILY, 13).into_font()).transform(FontTransform::Rotate270).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(name.clone(), (left + mid, top - 6), rotated)).map_err(draw_err)?;
            let right_aligned = TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(name.clone(), (left - 6, top + mid), right_aligned)).map_err(draw_err)?;
        }
        for (i, row) in matrix.iter().enumerate() {
            let total = row.iter().sum::<u64>().max(1) as f64;
            for (j, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let shade = |full: u8| (255.0 - share * (255.0 - full as f64)).round() as u8;
                let fill = RGBColor(shade(8), shade(48), shade(107));
                let (x, y) = (left + j as i32 * cell, top + i as i32 * cell);
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], fill.filled())).map_err(draw_err)?;
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], RGBColor(255, 255, 255).stroke_width(1))).map_err(draw_err)?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(count.to_string(), (x + cell / 2, y + cell / 2), centred(12).color(&ink))).map_err(draw_err)?;
            }
            let recall = row[i] as f64 / total;
            let y = top + i as i32 * cell + cell / 2;
            root.draw(&Text::new(format!("{:.1}%", 100.0 * recall), (left + k as i32 * cell + right / 2, y), centred(13)))
                .map_err(draw_err)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png: &[u8]) -> image::RgbImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap().to_rgb8()
    }

    /// Pixels of `img` close to `c`.
    fn count_colour(img: &image::RgbImage, c: RGBColor) -> usize {
        img.pixels().filter(|p| (0..3).all(|k| (p.0[k] as i32 - [c.0, c.1, c.2][k] as i32).abs() <= 2)).count()
    }

    #[test]
    fn line_chart_draws_each_series_in_its_colour() {
        let series = |name: &str, color, style| Series {
            name: name.into(),
            points: (0..20).map(|i| (i as f64, (i * color) as f64)).collect(),
            color,
            style,
        };
        let panel = Panel {
            title: "Loss".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: vec![series("a", 1, Style::Line), series("b", 3, Style::LineWithMarkers), series("c", 2, Style::Dashed)],
            integer_x: true,
        };
        let img = decode(&line_panels(&[panel.clone(), panel], (400, 300)).unwrap());
        assert_eq!(img.dimensions(), (800, 300));
        for c in [1, 2, 3] {
            assert!(count_colour(&img, PALETTE[c]) > 100, "series colour {c} missing");
        }
        // Text was rendered with the embedded font: dark pixels that are not series colours.
        assert!(count_colour(&img, RGBColor(0, 0, 0)) > 200);
    }

    #[test]
    fn empty_panels_say_so_and_scatter_uses_class_colours() {
        let empty = Panel { title: "kNN".into(), x_label: "epoch".into(), y_label: "%".into(), series: vec![], integer_x: false };
        assert!(line_panels(&[empty], (300, 200)).is_ok());
        let p = ScatterPanel {
            title: "map".into(),
            axes: ("x".into(), "y".into()),
            points: (0..200).map(|i| [(i % 2) as f64, (i / 2) as f64]).collect(),
            classes: (0..200).map(|i| (i % 2) as u16).collect(),
        };
        let img = decode(&scatter_panels(&[p], &["a".into(), "b".into()], (300, 300)).unwrap());
        assert!(count_colour(&img, PALETTE[0]) > 50 && count_colour(&img, PALETTE[1]) > 50);
        assert_eq!(count_colour(&img, PALETTE[2]), 0);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(format_tick(0.00025), "2.5e-4");
        assert_eq!(format_tick(0.125), "0.125");
        assert_eq!(format_tick(2.5), "2.5");
        assert_eq!(format_tick(-0.0), "0");
        assert_eq!(format_tick(-6.8e-21), "0");
        assert_eq!(format_tick(3e-6), "3.0e-6");
    }

    #[test]
    fn confusion_matrix_checks_its_shape() {
        let names: Vec<String> = ["cat", "dog"].iter().map(|s| s.to_string()).collect();
        let png = confusion_matrix(&[vec![9, 1], vec![2, 8]], &names, "probe").unwrap();
        assert!(decode(&png).width() > 200);
        assert!(confusion_matrix(&[vec![9, 1]], &names, "probe").is_err());
    }
}
