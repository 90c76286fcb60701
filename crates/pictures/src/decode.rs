//! Decoding a source for a variant: its size checked against the limits before any pixel is
//! decoded, a JPEG decoded at the smallest DCT scale that still covers the variant, the EXIF
//! orientation applied, and the colour profile kept for the variant.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

use super::{fitted_cover, Limits, PictureError, Spec};

/// Whether an orientation turns the picture a quarter, swapping its width and height.
fn turns(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), PictureError> {
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PictureError::TooLarge {
            width,
            height,
            limit: format!("{} megapixels", limits.max_pixels / 1_000_000),
        });
    }
    Ok(())
}

/// The colour profile of the source, carried over to the variant so that a wide-gamut photo
/// (a phone's Display P3) keeps its colours; the pixels are not converted.
pub(crate) type Profile = Option<Vec<u8>>;

/// The source, decoded and upright, at least as large as the variant needs, with its colour
/// profile.
pub(crate) fn decode(
    path: &Path,
    spec: &Spec,
    limits: &Limits,
) -> Result<(DynamicImage, Profile), PictureError> {
    if let Some(decoded) = decode_jpeg_scaled(path, spec, limits)? {
        return Ok(decoded);
    }
    let reader = ImageReader::open(path)?.with_guessed_format()?;
    let mut header = reader
        .into_decoder()
        .map_err(|e| PictureError::Undecodable(e.to_string()))?;
    let (width, height) = header.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = header.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = header.icc_profile().ok().flatten();
    drop(header);
    let mut reader = ImageReader::open(path)?.with_guessed_format()?;
    let mut bounds = image::Limits::default();
    bounds.max_alloc = Some(limits.max_alloc);
    reader.limits(bounds);
    let mut picture = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => PictureError::TooLarge {
            width,
            height,
            limit: format!("{} MiB to decode", limits.max_alloc >> 20),
        },
        e => PictureError::Undecodable(e.to_string()),
    })?;
    picture.apply_orientation(orientation);
    Ok((picture, icc))
}

/// A JPEG, decoded at the smallest DCT scale that still covers the variant; `None` for any
/// other file, and for the JPEGs this path leaves to the general decoder (CMYK, 16-bit).
fn decode_jpeg_scaled(
    path: &Path,
    spec: &Spec,
    limits: &Limits,
) -> Result<Option<(DynamicImage, Profile)>, PictureError> {
    let mut decoder = jpeg_decoder::Decoder::new(BufReader::new(File::open(path)?));
    if decoder.read_info().is_err() {
        return Ok(None);
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_pixels(width, height, limits)?;
    if !matches!(
        info.pixel_format,
        jpeg_decoder::PixelFormat::L8 | jpeg_decoder::PixelFormat::RGB24
    ) {
        return Ok(None);
    }
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    // The size wanted, as displayed; the decoder is asked for it as stored.
    let (shown_w, shown_h) = if turns(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    let (want_w, want_h) = fitted_cover(shown_w, shown_h, spec);
    let (ask_w, ask_h) = if turns(orientation) {
        (want_h, want_w)
    } else {
        (want_w, want_h)
    };
    let clamp = |n: u32| u16::try_from(n.max(1)).unwrap_or(u16::MAX);
    decoder
        .scale(clamp(ask_w), clamp(ask_h))
        .map_err(|e| PictureError::Undecodable(e.to_string()))?;
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    let pixels = decoder
        .decode()
        .map_err(|e| PictureError::Undecodable(e.to_string()))?;
    let Some(out) = decoder.info() else {
        return Ok(None);
    };
    let (w, h) = (u32::from(out.width), u32::from(out.height));
    let picture: Option<DynamicImage> = match out.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            image::RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
        }
        _ => None,
    };
    let Some(mut picture) = picture else {
        return Err(PictureError::Undecodable(
            "the decoder returned fewer pixels than its header promised".into(),
        ));
    };
    picture.apply_orientation(orientation);
    Ok(Some((picture, decoder.icc_profile())))
}
