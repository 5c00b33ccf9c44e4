//! A small line chart as a standalone SVG document: axes, ticks, labelled series as polylines
//! with point markers, and a legend. Hand-written so the suite needs no plotting dependency.

use std::fmt::Write as _;

/// One labelled line of (x, y) points.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed: published figures, not this run's measurements.
    pub dashed: bool,
}

/// A chart: title, axis labels, series.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// How values map onto one axis.
#[derive(Clone, Copy, Debug)]
struct Axis {
    min: f64,
    max: f64,
    /// Base-10 logarithmic (grids like 10, 100, 1000 would otherwise bunch up on the left).
    log: bool,
}

impl Axis {
    fn fit(values: impl Iterator<Item = f64> + Clone, allow_log: bool) -> Self {
        let finite = values.filter(|v| v.is_finite());
        let min = finite.clone().fold(f64::INFINITY, f64::min);
        let max = finite.fold(f64::NEG_INFINITY, f64::max);
        if !min.is_finite() || !max.is_finite() {
            return Self {
                min: 0.0,
                max: 1.0,
                log: false,
            };
        }
        if allow_log && min > 0.0 && max / min >= 20.0 {
            return Self {
                min: 10f64.powf(min.log10().floor()),
                max: 10f64.powf(max.log10().ceil()),
                log: true,
            };
        }
        // Linear axes start at zero so ratios between points read true.
        let lower = min.min(0.0);
        let upper = if max > lower { max * 1.1 } else { lower + 1.0 };
        Self {
            min: lower,
            max: upper,
            log: false,
        }
    }

    /// Position of `value` as a fraction 0..=1 of the axis length.
    fn fraction(&self, value: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            (
                value.max(self.min).log10(),
                self.min.log10(),
                self.max.log10(),
            )
        } else {
            (value, self.min, self.max)
        };
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (lo, hi) = (
                self.min.log10().round() as i32,
                self.max.log10().round() as i32,
            );
            return (lo..=hi).map(|e| 10f64.powi(e)).collect();
        }
        let span = self.max - self.min;
        let raw = span / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(magnitude * 10.0);
        let mut ticks = Vec::new();
        let mut tick = (self.min / step).ceil() * step;
        while tick <= self.max + step * 1e-9 && ticks.len() < 20 {
            ticks.push(tick);
            tick += step;
        }
        ticks
    }
}

fn number(value: f64) -> String {
    if value.abs() >= 1000.0 || value.fract() == 0.0 {
        crate::report::grouped(value)
    } else if value.abs() >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Escapes text for SVG content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Chart {
    /// The SVG document.
    pub fn render(&self) -> String {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let x_axis = Axis::fit(points().map(|p| p.0), true);
        let y_axis = Axis::fit(points().map(|p| p.1), false);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x_at = |x: f64| LEFT + x_axis.fraction(x) * plot_w;
        let y_at = |y: f64| TOP + plot_h - y_axis.fraction(y) * plot_h;

        let mut svg = String::new();
        // Writing into a String cannot fail; the results are ignored deliberately.
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        // Axes.
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            TOP + plot_h,
            LEFT + plot_w,
            TOP + plot_h
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#,
            TOP + plot_h
        );
        for tick in x_axis.ticks() {
            let x = x_at(tick);
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                TOP + plot_h,
                TOP + plot_h + 5.0,
                TOP + plot_h + 18.0,
                number(tick)
            );
        }
        for tick in y_axis.ticks() {
            let y = y_at(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                number(tick)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 18.0,
            escape(&self.x_label),
            if x_axis.log { " (log scale)" } else { "" }
        );
        let _ = writeln!(
            svg,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Series and legend.
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let dash = if series.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let coords: Vec<String> = series
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", x_at(x), y_at(y)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
                coords.join(" ")
            );
            for coord in &coords {
                if let Some((cx, cy)) = coord.split_once(',') {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#
                    );
                }
            }
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = WIDTH - RIGHT + 15.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 24.0,
                lx + 30.0,
                ly + 4.0,
                escape(&series.label)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: Vec<(f64, f64)>) -> Chart {
        Chart {
            title: "latency <vs> clients".into(),
            x_label: "clients".into(),
            y_label: "ms".into(),
            series: vec![
                Series {
                    label: "ampere".into(),
                    points,
                    dashed: false,
                },
                Series {
                    label: "Electric".into(),
                    points: vec![(5.0, 21.5), (1000.0, 334.6)],
                    dashed: true,
                },
            ],
        }
    }

    #[test]
    fn renders_axes_series_and_escaped_labels() {
        let svg = chart(vec![(10.0, 3.0), (100.0, 5.0), (1000.0, 40.0)]).render();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("latency &lt;vs&gt; clients"));
        assert!(svg.contains("(log scale)"));
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains(">1,000<"));
    }

    #[test]
    fn copes_with_one_point_and_no_points() {
        let one = chart(vec![(10.0, 3.0)]).render();
        assert_eq!(one.matches("<circle").count(), 3);
        let empty = Chart {
            series: vec![],
            ..chart(vec![])
        }
        .render();
        assert!(empty.contains("</svg>"));
    }

    #[test]
    fn linear_ticks_cover_the_range() {
        let axis = Axis::fit([0.0, 7.3].into_iter(), false);
        let ticks = axis.ticks();
        assert_eq!(ticks.first().copied(), Some(0.0));
        assert!(ticks.len() >= 3 && ticks.len() <= 12, "{ticks:?}");
        assert!(ticks.iter().all(|t| *t <= axis.max));
    }
}
