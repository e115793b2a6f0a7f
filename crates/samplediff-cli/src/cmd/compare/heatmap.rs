//! `--heatmap out.png`: a grid of per-channel |a-b| maps on one shared colour scale, with a
//! colour bar and labels, so a person sees at a glance which channels and where the error is.
//!
//! Pixels where one side is NaN/Inf and the other does not agree are drawn in cyan, outside
//! the colour scale. Text uses the 8x8 public-domain bitmap font of `font8x8`.

use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;
use samplediff_metrics::maps::ErrorMap;
use samplediff_metrics::render::num;

const BG: [u8; 3] = [24, 24, 28];
const FG: [u8; 3] = [235, 235, 235];
const BAD: [u8; 3] = [0, 230, 255];
const PAD: usize = 10;
const LABEL_H: usize = 12;
/// Tiles are scaled up to about this many pixels on their long side, or pooled down to it.
const TILE_TARGET: usize = 256;
const MAX_TILES: usize = 64;

/// An RGB canvas.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        let mut px = Vec::with_capacity(w * h * 3);
        for _ in 0..w * h {
            px.extend_from_slice(&BG);
        }
        Self { w, h, px }
    }

    fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = (y * self.w + x) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// ASCII text with its top-left corner at (x, y); returns the width drawn.
    fn text(&mut self, x: usize, y: usize, s: &str) -> usize {
        for (i, ch) in s.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY[if ch.is_ascii() { ch as usize } else { b'?' as usize }];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        self.set(x + i * 8 + col, y + row, FG);
                    }
                }
            }
        }
        s.chars().count() * 8
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
        let mut enc = png::Encoder::new(BufWriter::new(file), self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().with_context(|| format!("{}: cannot write PNG", path.display()))?;
        writer.write_image_data(&self.px).with_context(|| format!("{}: cannot write PNG", path.display()))?;
        writer.finish().with_context(|| format!("{}: cannot write PNG", path.display()))?;
        Ok(())
    }
}

/// Perceptually ordered dark-to-bright ramp (an approximation of matplotlib's "inferno").
fn colour(t: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 6] = [
        [0.0, 0.0, 4.0],
        [66.0, 10.0, 104.0],
        [147.0, 38.0, 103.0],
        [221.0, 81.0, 58.0],
        [252.0, 165.0, 10.0],
        [252.0, 255.0, 164.0],
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mix = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// Write the heatmap of `maps` (one per channel) to `path`; `title` heads the picture.
pub fn write(path: &Path, title: &str, maps: &[ErrorMap]) -> anyhow::Result<()> {
    anyhow::ensure!(!maps.is_empty(), "{}: nothing to draw (empty tensor)", path.display());
    let shown = &maps[..maps.len().min(MAX_TILES)];
    let (h, w) = (shown[0].h, shown[0].w);
    // Integer up-scaling for small maps, max-pooling for big ones.
    let long = h.max(w).max(1);
    let (up, down) = if long > TILE_TARGET {
        (1, long.div_ceil(TILE_TARGET))
    } else {
        (((TILE_TARGET as f64 / long as f64).round() as usize).max(1), 1)
    };
    let (th, tw) = (h.div_ceil(down) * up, w.div_ceil(down) * up);
    let tw_label = tw.max(15 * 8);
    let cols = (shown.len() as f64).sqrt().ceil() as usize;
    let rows = shown.len().div_ceil(cols);
    let vmax = shown.iter().flat_map(|m| m.abs.iter().copied()).fold(0.0f64, f64::max);
    let any_bad = shown.iter().any(|m| m.bad.iter().any(|&b| b));

    let grid_x = PAD;
    let grid_y = PAD + 2 * LABEL_H + PAD;
    let grid_w = cols * (tw_label + PAD);
    let grid_h = rows * (th + LABEL_H + PAD);
    let bar_x = grid_x + grid_w + PAD;
    let bar_w = 18;
    let width = (bar_x + bar_w + 12 * 8 + PAD).max(PAD * 2 + title.len() * 8);
    let height = grid_y + grid_h.max(160) + if any_bad { LABEL_H + PAD } else { 0 } + PAD;
    let mut c = Canvas::new(width, height);

    c.text(PAD, PAD, title);
    let mut sub = format!("|a-b| per channel, max over batch and frames; colour 0 .. {}", num(Some(vmax)));
    if maps.len() > shown.len() {
        sub.push_str(&format!(" (first {} of {} channels)", shown.len(), maps.len()));
    }
    c.text(PAD, PAD + LABEL_H, &sub);

    for (i, m) in shown.iter().enumerate() {
        let (x0, y0) = (grid_x + (i % cols) * (tw_label + PAD), grid_y + (i / cols) * (th + LABEL_H + PAD));
        let cmax = m.abs.iter().copied().fold(0.0f64, f64::max);
        c.text(x0, y0, &format!("ch{} max {}", m.channel, num(Some(cmax))));
        let ty = y0 + LABEL_H;
        for py in 0..th {
            for px in 0..tw {
                // The source block this output pixel covers (max over it).
                let (sy, sx) = ((py / up) * down, (px / up) * down);
                let mut v = 0.0f64;
                let mut bad = false;
                for yy in sy..(sy + down).min(h) {
                    for xx in sx..(sx + down).min(w) {
                        v = v.max(m.abs[yy * w + xx]);
                        bad |= m.bad[yy * w + xx];
                    }
                }
                let col = if bad { BAD } else { colour(if vmax > 0.0 { v / vmax } else { 0.0 }) };
                c.set(x0 + px, ty + py, col);
            }
        }
    }

    // Colour bar with its scale.
    let bar_h = grid_h.max(160) - LABEL_H - PAD;
    let bar_y = grid_y + LABEL_H;
    c.text(bar_x, grid_y, "|a-b|");
    for y in 0..bar_h {
        let col = colour(1.0 - y as f64 / (bar_h - 1).max(1) as f64);
        for x in 0..bar_w {
            c.set(bar_x + x, bar_y + y, col);
        }
    }
    let tick_x = bar_x + bar_w + 4;
    c.text(tick_x, bar_y, &num(Some(vmax)));
    c.text(tick_x, bar_y + bar_h / 2 - 4, &num(Some(vmax / 2.0)));
    c.text(tick_x, bar_y + bar_h - 8, "0");
    if any_bad {
        let y = grid_y + grid_h.max(160) + 2;
        for yy in 0..8 {
            for xx in 0..8 {
                c.set(PAD + xx, y + yy, BAD);
            }
        }
        c.text(PAD + 12, y, "NaN/Inf on one side only");
    }
    c.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_ramp_runs_dark_to_bright() {
        let lum = |c: [u8; 3]| c.iter().map(|&v| v as u32).sum::<u32>();
        let mut last = 0;
        for i in 0..=20 {
            let l = lum(colour(i as f64 / 20.0));
            assert!(l >= last, "ramp must brighten");
            last = l;
        }
        assert_eq!(colour(f64::NAN), colour(0.0));
    }

    #[test]
    fn writes_a_png_of_the_expected_size() {
        let maps: Vec<ErrorMap> = (0..3)
            .map(|ch| ErrorMap {
                channel: ch,
                h: 4,
                w: 5,
                abs: (0..20).map(|i| (i * ch) as f64).collect(),
                bad: (0..20).map(|i| i == 7).collect(),
            })
            .collect();
        let path = std::env::temp_dir().join(format!("samplediff-heatmap-{}.png", std::process::id()));
        write(&path, "t", &maps).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(write(&path, "t", &[]).is_err());
    }
}
