//! Shoebox's picture pipeline: a sized variant of a stored image, made in-process.
//!
//! [`render`] reads a JPEG, PNG, WebP or GIF from a file and returns it resized to a
//! [`Spec`], upright (its EXIF orientation applied), and encoded again with no metadata at
//! all, so that a variant never carries a location or a device's serial number.
//!
//! The work a hostile file can cause is bounded before any pixel is decoded: the header's
//! dimensions are checked against [`Limits::max_pixels`], and decoders may allocate at most
//! [`Limits::max_alloc`]. A JPEG, the usual camera photo, is decoded at a reduced scale (the
//! DCT gives 1/2, 1/4 or 1/8 of the size for little more than the cost of reading it), which
//! both bounds its memory and makes thumbnails fast; the resize to the exact size is done by
//! `fast_image_resize` (Lanczos3, with SIMD).

/// Sources decoded within bounds, upright, at the smallest scale a variant needs.
mod decode;
/// Metadata removed from stored pictures without a re-encode.
pub mod strip;
/// Videos' posters and lengths, and audio's, through ffmpeg and ffprobe.
pub mod video;

use std::path::Path;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

/// The version of this pipeline, part of every variant's name: a change to what [`render`]
/// makes (a better encoder, another filter) bumps it, so that variants made before are made
/// again rather than served, and `gc` removes the old ones.
pub const PIPELINE: &str = "p2";

/// How a picture fills a box given by both a width and a height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fit {
    /// The whole picture, inside the box: one side may come out shorter.
    Contain,
    /// The box, filled: the picture is cropped around its centre to the box's shape.
    Cover,
}

impl Fit {
    /// The name used in query strings and variant names.
    pub fn name(self) -> &'static str {
        match self {
            Fit::Contain => "contain",
            Fit::Cover => "cover",
        }
    }

    /// From a query string's `fit=`.
    pub fn parse(s: &str) -> Option<Fit> {
        match s {
            "contain" => Some(Fit::Contain),
            "cover" => Some(Fit::Cover),
            _ => None,
        }
    }
}

/// An encoding a variant can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Baseline JPEG, quality 82.
    Jpeg,
    /// PNG, lossless.
    Png,
    /// Lossy WebP, quality 80 (libwebp).
    Webp,
}

impl Format {
    /// The name used in query strings and variant names, which is also the file extension.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }

    /// From a query string's `format=` (`jpg` is taken for `jpeg`).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "jpeg" | "jpg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "webp" => Some(Format::Webp),
            _ => None,
        }
    }

    /// The media type a variant in this format is served as.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }
}

/// A stored image's type, if this pipeline makes variants of it, with the format its variants
/// take when the client names none and does not take WebP: its own, or PNG for a GIF.
pub fn source_format(content_type: &str) -> Option<Format> {
    match content_type {
        "image/jpeg" => Some(Format::Jpeg),
        "image/png" | "image/gif" => Some(Format::Png),
        "image/webp" => Some(Format::Webp),
        _ => None,
    }
}

/// What to make: a box (a width, a height, or both), how to fit it, and the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Spec {
    /// The width to fit, in pixels.
    pub width: Option<u32>,
    /// The height to fit, in pixels.
    pub height: Option<u32>,
    /// How to fill a box given by both.
    pub fit: Fit,
    /// The encoding.
    pub format: Format,
}

impl Spec {
    /// The variant's file name: every parameter, normalised, so that one variant has one name
    /// (`w320-h0-contain.webp`). The pipeline's version is the folder above it.
    pub fn file_name(&self) -> String {
        // With one side given, both fits make the same picture.
        let fit = match (self.width, self.height) {
            (Some(_), Some(_)) => self.fit,
            _ => Fit::Contain,
        };
        format!(
            "w{}-h{}-{}.{}",
            self.width.unwrap_or(0),
            self.height.unwrap_or(0),
            fit.name(),
            self.format.name()
        )
    }
}

/// How much work one source may cause.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Pixels in the source, by its header: past this a variant is refused before decoding.
    pub max_pixels: u64,
    /// Bytes a decoder may allocate for one source.
    pub max_alloc: u64,
}

impl Default for Limits {
    /// 250 megapixels (more than any camera makes) and 1 GiB; a JPEG that large is decoded at
    /// a reduced scale, so it never comes near the allocation limit.
    fn default() -> Self {
        Limits {
            max_pixels: 250_000_000,
            max_alloc: 1 << 30,
        }
    }
}

/// A variant, encoded.
#[derive(Debug)]
pub struct Rendered {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
}

/// Why a variant could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// The source is larger than [`Limits::max_pixels`] or needs more memory than
    /// [`Limits::max_alloc`] to decode.
    #[error(
        "the image is {width}×{height} pixels, more than this server makes variants of \
         ({limit}); the original is still served"
    )]
    TooLarge {
        /// The source's width, by its header.
        width: u32,
        /// The source's height, by its header.
        height: u32,
        /// What the limit allows, in words.
        limit: String,
    },
    /// The source is not an image this pipeline can decode.
    #[error("the image could not be decoded ({0}); the original is still served")]
    Undecodable(String),
    /// Reading the source failed.
    #[error("could not read the image: {0}")]
    Io(#[from] std::io::Error),
    /// Resizing or encoding failed.
    #[error("could not make the variant: {0}")]
    Encode(String),
}

/// Makes the variant `spec` of the image in `path`.
pub fn render(path: &Path, spec: &Spec, limits: &Limits) -> Result<Rendered, PictureError> {
    let (picture, icc) = decode::decode(path, spec, limits)?;
    let (width, height) = fitted(picture.width(), picture.height(), spec);
    let resized = resize(&picture, width, height, spec)?;
    let bytes = with_profile(encode(&resized, spec.format)?, icc);
    Ok(Rendered {
        bytes,
        width,
        height,
    })
}

/// `encoded` with `icc` as its colour profile, when there is one.
fn with_profile(encoded: Vec<u8>, icc: decode::Profile) -> Vec<u8> {
    use img_parts::ImageICC;
    let Some(icc) = icc.filter(|p| !p.is_empty()) else {
        return encoded;
    };
    match img_parts::DynImage::from_bytes(encoded.clone().into()) {
        Ok(Some(mut image)) => {
            image.set_icc_profile(Some(icc.into()));
            image.encoder().bytes().to_vec()
        }
        _ => encoded,
    }
}

/// The size to decode to before the exact resize: what covers the variant's box, so that a
/// crop (for [`Fit::Cover`]) or a fit still has every pixel it needs.
pub(crate) fn fitted_cover(width: u32, height: u32, spec: &Spec) -> (u32, u32) {
    let scale_w = spec.width.map(|w| f64::from(w) / f64::from(width));
    let scale_h = spec.height.map(|h| f64::from(h) / f64::from(height));
    let scale = match (scale_w, scale_h) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 1.0,
    }
    .min(1.0);
    scaled(width, height, scale)
}

pub(crate) fn scaled(width: u32, height: u32, scale: f64) -> (u32, u32) {
    let side = |n: u32| ((f64::from(n) * scale).round() as u32).max(1);
    (side(width), side(height))
}

/// The variant's size for a source of `width`×`height` (upright): the box, filled or fitted
/// as `spec` says, and never larger than the source.
pub fn fitted(width: u32, height: u32, spec: &Spec) -> (u32, u32) {
    match (spec.width, spec.height, spec.fit) {
        (Some(w), Some(h), Fit::Cover) => {
            // The box's shape, as large as the source allows up to the box.
            let scale = (f64::from(width) / f64::from(w))
                .min(f64::from(height) / f64::from(h))
                .min(1.0);
            scaled(w, h, scale)
        }
        (w, h, _) => {
            let scale_w = w.map(|w| f64::from(w) / f64::from(width));
            let scale_h = h.map(|h| f64::from(h) / f64::from(height));
            let scale = match (scale_w, scale_h) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => 1.0,
            }
            .min(1.0);
            scaled(width, height, scale)
        }
    }
}

/// The picture at exactly `width`×`height`: fitted, or cropped around its centre to the
/// box's shape for [`Fit::Cover`]. Alpha is kept only where the format can carry it.
fn resize(
    picture: &DynamicImage,
    width: u32,
    height: u32,
    spec: &Spec,
) -> Result<DynamicImage, PictureError> {
    let alpha = picture.color().has_alpha() && spec.format != Format::Jpeg;
    let source = if alpha {
        DynamicImage::ImageRgba8(picture.to_rgba8())
    } else if picture.color() == image::ColorType::Rgb8 {
        // Already what the resizer takes: no copy.
        return resize_into(picture, DynamicImage::new_rgb8(width, height), spec);
    } else {
        DynamicImage::ImageRgb8(picture.to_rgb8())
    };
    let target = if alpha {
        DynamicImage::new_rgba8(width, height)
    } else {
        DynamicImage::new_rgb8(width, height)
    };
    resize_into(&source, target, spec)
}

fn resize_into(
    source: &DynamicImage,
    mut target: DynamicImage,
    spec: &Spec,
) -> Result<DynamicImage, PictureError> {
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if spec.fit == Fit::Cover {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    Resizer::new()
        .resize(source, &mut target, &options)
        .map_err(|e| PictureError::Encode(e.to_string()))?;
    Ok(target)
}

fn encode(picture: &DynamicImage, format: Format) -> Result<Vec<u8>, PictureError> {
    let failed = |e: &dyn std::fmt::Display| PictureError::Encode(e.to_string());
    let mut out = Vec::new();
    match format {
        Format::Jpeg => {
            let rgb = picture.to_rgb8();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
                .encode_image(&rgb)
                .map_err(|e| failed(&e))?;
        }
        Format::Png => {
            picture
                .write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
                .map_err(|e| failed(&e))?;
        }
        Format::Webp => {
            let (w, h) = (picture.width(), picture.height());
            let encoded = match picture {
                DynamicImage::ImageRgba8(p) => {
                    webp::Encoder::from_rgba(p.as_raw(), w, h).encode(80.0)
                }
                DynamicImage::ImageRgb8(p) => {
                    webp::Encoder::from_rgb(p.as_raw(), w, h).encode(80.0)
                }
                other => {
                    let rgb = other.to_rgb8();
                    webp::Encoder::from_rgb(rgb.as_raw(), w, h).encode(80.0)
                }
            };
            out.extend_from_slice(&encoded);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width: Option<u32>, height: Option<u32>, fit: Fit) -> Spec {
        Spec {
            width,
            height,
            fit,
            format: Format::Jpeg,
        }
    }

    #[test]
    fn sizes_keep_the_shape_and_never_enlarge() {
        // An upright 3000×4000 photo at w=320 is 320×427.
        assert_eq!(
            fitted(3000, 4000, &spec(Some(320), None, Fit::Contain)),
            (320, 427)
        );
        assert_eq!(
            fitted(4000, 3000, &spec(None, Some(300), Fit::Contain)),
            (400, 300)
        );
        assert_eq!(
            fitted(4000, 3000, &spec(Some(320), Some(320), Fit::Contain)),
            (320, 240)
        );
        assert_eq!(
            fitted(4000, 3000, &spec(Some(320), Some(320), Fit::Cover)),
            (320, 320)
        );
        // Smaller than the box: the source's own size, or the box's shape within it.
        assert_eq!(
            fitted(100, 50, &spec(Some(1920), None, Fit::Contain)),
            (100, 50)
        );
        assert_eq!(
            fitted(100, 50, &spec(Some(160), Some(160), Fit::Cover)),
            (50, 50)
        );
        assert_eq!(
            fitted(1, 5000, &spec(Some(160), None, Fit::Contain)),
            (1, 5000)
        );
    }

    #[test]
    fn one_variant_has_one_name() {
        let mut s = spec(Some(320), None, Fit::Cover);
        assert_eq!(s.file_name(), "w320-h0-contain.jpeg");
        s.height = Some(160);
        assert_eq!(s.file_name(), "w320-h160-cover.jpeg");
    }

    fn write_png(dir: &Path, name: &str, picture: &DynamicImage) -> std::path::PathBuf {
        let path = dir.join(name);
        picture.save(&path).unwrap();
        path
    }

    #[test]
    fn renders_each_format_at_the_size_asked() {
        let dir = tempfile::tempdir().unwrap();
        let source = DynamicImage::ImageRgb8(image::RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let png = write_png(dir.path(), "a.png", &source);
        let jpeg = dir.path().join("a.jpg");
        source.save(&jpeg).unwrap();
        for path in [&png, &jpeg] {
            for format in [Format::Jpeg, Format::Png, Format::Webp] {
                let s = Spec {
                    width: Some(160),
                    height: None,
                    fit: Fit::Contain,
                    format,
                };
                let out = render(path, &s, &Limits::default()).unwrap();
                assert_eq!((out.width, out.height), (160, 120));
                let back = image::load_from_memory(&out.bytes).unwrap();
                assert_eq!((back.width(), back.height()), (160, 120), "{format:?}");
                let guessed = image::guess_format(&out.bytes).unwrap();
                assert_eq!(guessed.to_mime_type(), format.content_type());
            }
        }
    }

    #[test]
    fn a_source_past_the_pixel_limit_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_png(
            dir.path(),
            "big.png",
            &DynamicImage::ImageLuma8(image::GrayImage::new(200, 200)),
        );
        let limits = Limits {
            max_pixels: 10_000,
            ..Limits::default()
        };
        let s = spec(Some(160), None, Fit::Contain);
        assert!(matches!(
            render(&path, &s, &limits),
            Err(PictureError::TooLarge {
                width: 200,
                height: 200,
                ..
            })
        ));
    }

    #[test]
    fn bytes_that_are_no_image_are_undecodable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let s = spec(Some(160), None, Fit::Contain);
        assert!(matches!(
            render(&path, &s, &Limits::default()),
            Err(PictureError::Undecodable(_))
        ));
    }
}
