//! Real, decodable files for the browser to show: PNG pictures (a tiny encoder with stored
//! deflate blocks), a WAV tone and a one-page PDF.

pub use crate::common::png;

fn mix(a: [u8; 3], b: [u8; 3], t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    [0, 1, 2].map(|i| (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t) as u8)
}

/// A landscape: sky gradient, a sun, hills. `palette` picks one of a few moods.
pub fn landscape(palette: usize) -> Vec<u8> {
    // Sky top, sky bottom, sun, land.
    type Mood = ([u8; 3], [u8; 3], [u8; 3], [u8; 3]);
    let moods: [Mood; 7] = [
        (
            [255, 183, 94],
            [240, 98, 146],
            [255, 244, 214],
            [62, 39, 84],
        ), // dusk
        (
            [120, 190, 255],
            [214, 236, 255],
            [255, 250, 220],
            [56, 128, 84],
        ), // meadow
        ([18, 32, 78], [88, 64, 160], [245, 245, 255], [20, 24, 44]), // night
        (
            [255, 214, 150],
            [255, 150, 90],
            [255, 255, 235],
            [150, 80, 50],
        ), // desert
        (
            [170, 220, 230],
            [90, 170, 190],
            [255, 255, 255],
            [30, 90, 110],
        ), // coast
        (
            [255, 196, 170],
            [255, 232, 204],
            [255, 252, 240],
            [70, 110, 140],
        ), // harbour
        (
            [200, 180, 250],
            [250, 200, 230],
            [255, 255, 250],
            [90, 60, 130],
        ), // lavender
    ];
    let (top, bottom, sun, land) = moods[palette % moods.len()];
    let (w, h) = (480u32, 360u32);
    let (sx, sy, r) = (
        (140 + palette as u32 * 70 % 220) as f32,
        (120 + palette as u32 * 13 % 60) as f32,
        38.0,
    );
    png(w, h, move |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let hill = 250.0 + 30.0 * ((fx / 70.0) + palette as f32).sin() + 14.0 * (fx / 23.0).cos();
        let far = 215.0 + 22.0 * ((fx / 110.0) + 2.0 * palette as f32).cos();
        if fy > hill {
            return mix(land, [0, 0, 0], (fy - hill) / 300.0);
        }
        if fy > far {
            return mix(land, top, 0.45);
        }
        let d = ((fx - sx).powi(2) + (fy - sy).powi(2)).sqrt();
        let sky = mix(top, bottom, fy / 260.0);
        if d < r {
            sun
        } else {
            mix(sun, sky, ((d - r) / 30.0).clamp(0.6, 1.0))
        }
    })
}

/// Half a second of a 440 Hz tone, 8 kHz mono 8-bit PCM.
pub fn wav() -> Vec<u8> {
    let samples: Vec<u8> = (0..4000)
        .map(|i| (128.0 + 60.0 * (i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin()) as u8)
        .collect();
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    for n in [1u16, 1] {
        v.extend_from_slice(&n.to_le_bytes());
    }
    for n in [8000u32, 8000] {
        v.extend_from_slice(&n.to_le_bytes());
    }
    for n in [1u16, 8] {
        v.extend_from_slice(&n.to_le_bytes());
    }
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    v.extend(samples);
    v
}

/// A minimal one-page PDF.
pub fn pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] >>",
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj {body} endobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for o in offsets {
        out.push_str(&format!("{o:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer << /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.into_bytes()
}
