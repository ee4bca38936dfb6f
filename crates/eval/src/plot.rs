//! The depth-sweep plot, drawn with plotters as PNG or SVG.
//!
//! Text is drawn with DejaVu Sans, embedded in the binary (the `dejavu`
//! crate) and registered with plotters' `ab_glyph` backend, so the PNG has
//! readable labels on a machine without any system font or fontconfig.

use crate::sweep::DepthSweep;
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const SIZE: (u32, u32) = (1000, 620);
const BLUE: RGBColor = RGBColor(31, 119, 180);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(110, 110, 110);

fn solid(c: RGBColor) -> ShapeStyle {
    c.stroke_width(3)
}

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ] {
            if plotters::style::register_font("sans-serif", style, bytes).is_err() {
                tracing::warn!("the embedded DejaVu font did not load; plot text may be missing");
            }
        }
    });
}

/// Draw the sweep to `path`: PNG, or SVG when the extension is `svg`.
///
/// Left axis: recall@k and nDCG@10 against depth, reranked (solid) and
/// hybrid (dashed), with hybrid recall@depth, the ceiling of any reordering.
/// Right axis: the latency the reranker adds (mean and p95). A vertical line
/// marks the flattening depth.
pub fn plot_depth_sweep(sweep: &DepthSweep, title: &str, path: &Path) -> Result<()> {
    register_fonts();
    let fail = |e: String| Error::Plot {
        path: path.to_owned(),
        message: e,
    };
    if sweep.points.is_empty() {
        return Err(fail("the sweep has no points".into()));
    }
    if path.extension().is_some_and(|e| e == "svg") {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        draw(&root, sweep, title).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))
    } else {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        draw(&root, sweep, title).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    sweep: &DepthSweep,
    title: &str,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let k = sweep.k;
    let points = &sweep.points;
    let x_min = points.iter().map(|p| p.depth).min().unwrap_or(0) as f64;
    let x_max = points.iter().map(|p| p.depth).max().unwrap_or(1) as f64;
    let pad = ((x_max - x_min) * 0.04).max(1.0);
    let x_range = (x_min - pad)..(x_max + pad);

    let values: Vec<f64> = points
        .iter()
        .flat_map(|p| {
            [
                Some(p.hybrid_recall_at_k),
                Some(p.hybrid_ndcg_at_10),
                Some(p.hybrid_recall_at_depth),
                p.rerank_recall_at_k,
                p.rerank_ndcg_at_10,
            ]
        })
        .flatten()
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Round out to 0.05 so the axis has tidy ticks and the curves room.
    let y_lo = ((lo - 0.03) * 20.0).floor().max(0.0) / 20.0;
    let y_hi = (((hi + 0.03) * 20.0).ceil() / 20.0)
        .min(1.0)
        .max(y_lo + 0.05);

    let caption = if sweep.reranked {
        format!("{title}: quality and rerank cost against depth (k = {k})")
    } else {
        format!("{title}: hybrid against depth (k = {k}); no reranker, rerank figures absent")
    };
    let chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .right_y_label_area_size(if sweep.reranked { 72 } else { 16 })
        .build_cartesian_2d(x_range.clone(), y_lo..y_hi)
        .map_err(e)?;
    let latency_max = points
        .iter()
        .filter_map(|p| p.rerank_latency.map(|l| l.p95_ms.max(l.mean_ms)))
        .fold(0.0, f64::max);
    let mut chart = chart.set_secondary_coord(x_range, 0.0..(latency_max * 1.15).max(1.0));
    chart
        .configure_mesh()
        .x_desc("depth (documents handed to the reranker)")
        .y_desc("score")
        .x_labels(12)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .y_labels(10)
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()
        .map_err(e)?;
    if sweep.reranked {
        chart
            .configure_secondary_axes()
            .y_desc("rerank latency added (ms per query)")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .draw()
            .map_err(e)?;
    }

    let xy = |f: &dyn Fn(&crate::sweep::DepthPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| f(p).map(|v| (p.depth as f64, v)))
            .collect()
    };
    let dashed = |series: Vec<(f64, f64)>, c: RGBColor| {
        DashedLineSeries::new(series, 8, 6, c.stroke_width(2))
    };

    if let Some(depth) = sweep.flattening.depth {
        let line = vec![(depth as f64, y_lo), (depth as f64, y_hi)];
        chart
            .draw_series(DashedLineSeries::new(line, 3, 4, BLACK.stroke_width(1)))
            .map_err(e)?
            .label(format!("flattening depth {depth}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(1)));
    }
    // Hollow markers on the hybrid curves show where depths were measured.
    for (series, colour) in [
        (xy(&|p| Some(p.hybrid_recall_at_depth)), GREY),
        (xy(&|p| Some(p.hybrid_recall_at_k)), BLUE),
        (xy(&|p| Some(p.hybrid_ndcg_at_10)), GREEN),
    ] {
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour.stroke_width(1))),
            )
            .map_err(e)?;
    }
    let ceiling = xy(&|p| Some(p.hybrid_recall_at_depth));
    chart
        .draw_series(dashed(ceiling, GREY))
        .map_err(e)?
        .label("hybrid recall@depth (ceiling)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], GREY.stroke_width(2)));
    chart
        .draw_series(dashed(xy(&|p| Some(p.hybrid_recall_at_k)), BLUE))
        .map_err(e)?
        .label(format!("hybrid recall@{k}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(dashed(xy(&|p| Some(p.hybrid_ndcg_at_10)), GREEN))
        .map_err(e)?
        .label("hybrid nDCG@10")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], GREEN.stroke_width(2)));
    if sweep.reranked {
        let recall = xy(&|p| p.rerank_recall_at_k);
        chart
            .draw_series(LineSeries::new(recall.clone(), solid(BLUE)))
            .map_err(e)?
            .label(format!("reranked recall@{k}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], solid(BLUE)));
        chart
            .draw_series(recall.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(e)?;
        let ndcg = xy(&|p| p.rerank_ndcg_at_10);
        chart
            .draw_series(LineSeries::new(ndcg.clone(), solid(GREEN)))
            .map_err(e)?
            .label("reranked nDCG@10")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], solid(GREEN)));
        chart
            .draw_series(ndcg.iter().map(|&p| Circle::new(p, 4, GREEN.filled())))
            .map_err(e)?;
        let mean = xy(&|p| p.rerank_latency.map(|l| l.mean_ms));
        chart
            .draw_secondary_series(LineSeries::new(mean.clone(), solid(RED)))
            .map_err(e)?
            .label("rerank ms added, mean (right axis)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], solid(RED)));
        chart
            .draw_secondary_series(
                mean.iter()
                    .map(|&p| TriangleMarker::new(p, 5, RED.filled())),
            )
            .map_err(e)?;
        chart
            .draw_secondary_series(dashed(xy(&|p| p.rerank_latency.map(|l| l.p95_ms)), RED))
            .map_err(e)?
            .label("rerank ms added, p95 (right axis)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], RED.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(e)?;
    Ok(())
}
