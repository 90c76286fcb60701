//! Sized variants of images on `/m/{id}` and `/f/{hash}`: `?w=` and `?h=` (from the configured
//! list), `?fit=contain|cover` and `?format=jpeg|png|webp`. Without `format`, WebP goes to a
//! browser that takes it and the source's own format to any other, with `Vary: Accept`.
//!
//! A variant is made once and kept under `variants/` (see [`crate::store::variants`]):
//! concurrent requests for one wait for a single generation, and at most
//! `SHOEBOX_VARIANT_JOBS` are made at a time. The picture work itself is
//! [`shoebox_pictures`]'s, on a blocking thread. Who may see a variant is decided by the
//! caller, exactly as for the original.
//!
//! Videos and audio are learned about here too ([`Variants::learn`]): when ffmpeg is installed,
//! a video's poster frame (`?poster=1`, sized like any image) and length, and audio's length,
//! after the upload's `201`, in the same queue of jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::web;
use shoebox_pictures::{self as pictures, Fit, Format, PictureError, Spec, PIPELINE};
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::store::{ContentHash, Kind, MediaId, MediaRecord, PosterState, Store, StoreError};

/// A variant a request asks for.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// What to make.
    pub spec: Spec,
    /// The format was chosen from `Accept`, so the answer varies with it.
    pub negotiated: bool,
}

fn one_of(widths: &[u32]) -> String {
    let list: Vec<String> = widths.iter().map(u32::to_string).collect();
    format!("one of {}", list.join(", "))
}

/// A query string's parameters, in order (none for one that does not parse).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// The variant a query asks for, `None` when it asks for the original. `accept` is the
/// request's `Accept` header and `content_type` the stored type of the source.
pub fn wanted(
    pairs: &[(String, String)],
    accept: Option<&str>,
    content_type: &str,
    widths: &[u32],
) -> Result<Option<Wanted>, ApiError> {
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let side = |key: &'static str| -> Result<Option<u32>, ApiError> {
        match get(key) {
            None => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if widths.contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::invalid(key, one_of(widths))),
            },
        }
    };
    let (width, height) = (side("w")?, side("h")?);
    if width.is_none() && height.is_none() {
        if get("fit").is_some() || get("format").is_some() {
            return Err(ApiError::bad_request(
                "fit= and format= shape a variant: give w= or h= too",
            ));
        }
        return Ok(None);
    }
    let Some(own) = pictures::source_format(content_type) else {
        return Err(ApiError::bad_request(format!(
            "variants are made of JPEG, PNG, WebP and GIF images; this file is {content_type}"
        )));
    };
    let fit = match get("fit") {
        None => Fit::Contain,
        Some(f) => Fit::parse(f).ok_or_else(|| ApiError::invalid("fit", "contain or cover"))?,
    };
    let (format, negotiated) = match get("format") {
        Some(f) => (
            Format::parse(f).ok_or_else(|| ApiError::invalid("format", "jpeg, png or webp"))?,
            false,
        ),
        None if accepts_webp(accept) => (Format::Webp, true),
        None => (own, true),
    };
    Ok(Some(Wanted {
        spec: Spec {
            width,
            height,
            fit,
            format,
        },
        negotiated,
    }))
}

/// Whether the query asks for a video's poster frame (`poster=1`): only a video whose poster
/// was made has one.
pub fn poster_asked(pairs: &[(String, String)], record: &MediaRecord) -> Result<bool, ApiError> {
    let asked = match pairs
        .iter()
        .find(|(k, _)| k == "poster")
        .map(|(_, v)| v.as_str())
    {
        None | Some("0" | "false") => return Ok(false),
        Some(_) => true,
    };
    if record.kind != Kind::Video {
        return Err(ApiError::bad_request(format!(
            "poster=1 is for videos; this file is {}",
            record.content_type
        )));
    }
    match record.poster {
        Some(PosterState::Ready) => Ok(asked),
        Some(PosterState::Pending) => Err(ApiError::NotFound("poster (it is being made)")),
        _ => Err(ApiError::NotFound("poster")),
    }
}

/// Whether an `Accept` header takes WebP: named with a quality above zero.
fn accepts_webp(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|item| {
            let mut parts = item.split(';');
            let kind = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            kind.eq_ignore_ascii_case("image/webp") && !refused
        })
    })
}

/// The listed width nearest `target` from above, or the largest listed.
pub fn nearest(widths: &[u32], target: u32) -> u32 {
    widths
        .iter()
        .copied()
        .find(|&w| w >= target)
        .or_else(|| widths.last().copied())
        .unwrap_or(target)
}

/// An HTML `srcset` of `url`'s variants, for an image `width` pixels wide when that is known:
/// every listed width up to the first that covers the whole image.
pub fn srcset(url: &str, widths: &[u32], width: Option<u32>) -> String {
    let mut out = Vec::new();
    for &w in widths {
        out.push(format!("{url}?w={w} {w}w"));
        if width.is_some_and(|full| w >= full) {
            break;
        }
    }
    out.join(", ")
}

/// What a variant is made from: the stored image itself, or a video's poster frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Base {
    /// The stored image.
    Original,
    /// The poster frame of a stored video (see [`POSTER`]).
    Poster,
}

/// The name of a video's poster frame under `variants/<hash>/<pipeline>/`.
pub const POSTER: &str = "poster.jpg";

/// The file name of a variant: its parameters, and what it was made from.
fn name(spec: &Spec, base: Base) -> String {
    match base {
        Base::Original => spec.file_name(),
        Base::Poster => format!("poster-{}", spec.file_name()),
    }
}

/// A digest of a variant's parameters, for the in-memory cache of small files.
pub fn key(spec: &Spec, base: Base) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (spec, base).hash(&mut h);
    // Never 0, which stands for the blob itself.
    h.finish() | 1
}

/// The strong ETag of a derived file: its source's address, the pipeline and its name.
pub fn etag(source: &ContentHash, name: &str) -> String {
    format!("{}-{PIPELINE}-{name}", source.to_hex())
}

/// The strong ETag of a variant.
pub fn variant_etag(source: &ContentHash, spec: &Spec, base: Base) -> String {
    etag(source, &name(spec, base))
}

impl From<PictureError> for ApiError {
    fn from(e: PictureError) -> Self {
        match e {
            PictureError::TooLarge { .. } => ApiError::Unprocessable {
                code: "image_too_large",
                message: e.to_string(),
            },
            PictureError::Undecodable(_) => ApiError::Unprocessable {
                code: "undecodable_image",
                message: e.to_string(),
            },
            PictureError::Io(_) | PictureError::Encode(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// The variants being made, and how many may be made at once.
pub struct Variants {
    /// One lock per variant being made: the first request makes it, the others wait.
    making: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Turns for the picture work: variants, posters and lengths.
    jobs: Semaphore,
    limits: pictures::Limits,
    /// Whether ffmpeg and ffprobe are here, so that videos get posters and lengths.
    pub posters: bool,
    /// Variants made since the start, for `/metrics`.
    pub generated: AtomicU64,
}

impl Variants {
    /// At most `jobs` variants (or posters) made at a time.
    pub fn new(jobs: usize) -> Self {
        Variants {
            making: Mutex::new(HashMap::new()),
            jobs: Semaphore::new(jobs.max(1)),
            limits: pictures::Limits::default(),
            posters: pictures::video::available(),
            generated: AtomicU64::new(0),
        }
    }

    /// Where a derived file `name` of the blob `source` is kept, made or not.
    pub fn derived(store: &Store, source: ContentHash, name: &str) -> Result<PathBuf, ApiError> {
        store
            .variant_path(&source, PIPELINE, name)
            .ok_or_else(|| ApiError::Internal(format!("unusable variant name {name}")))
    }

    /// The local file of the derived file `name` of `source` when it was made, here or (with
    /// a bucket) on another instance.
    pub async fn found(
        store: &Arc<Store>,
        source: ContentHash,
        name: &'static str,
    ) -> Result<PathBuf, ApiError> {
        let path = Self::derived(store, source, name)?;
        if path.is_file() {
            return Ok(path);
        }
        let store = store.clone();
        web::block(move || store.find_variant(&source, PIPELINE, name))
            .await??
            .ok_or(ApiError::NotFound("derived file (it was not made)"))
    }

    /// Where the variant `spec` of the blob `source` is kept, made or not.
    pub fn path(
        &self,
        store: &Store,
        source: ContentHash,
        spec: Spec,
        base: Base,
    ) -> Result<PathBuf, ApiError> {
        Self::derived(store, source, &name(&spec, base))
    }

    /// The file of a variant of the blob `source`, made now unless it was made before.
    pub async fn file(
        &self,
        store: &Arc<Store>,
        source: ContentHash,
        spec: Spec,
        base: Base,
    ) -> Result<PathBuf, ApiError> {
        let path = self.path(store, source, spec, base)?;
        if path.is_file() {
            return Ok(path);
        }
        if store.blobs().bucket().is_some() {
            // Made on another instance, perhaps.
            let (s, variant) = (store.clone(), name(&spec, base));
            let found = web::block(move || s.find_variant(&source, PIPELINE, &variant)).await??;
            if let Some(found) = found {
                return Ok(found);
            }
        }
        if store.is_damaged(&source) {
            return Err(ApiError::BlobDamaged(source.to_hex()));
        }
        self.made_once(&path, || self.make(store, source, spec, base))
            .await
    }

    /// The poster frame of the video `source`, made again when its file is gone. A derived
    /// file is a copy of what its video gives: one deleted with `variants/`, or lost with a
    /// disk, comes back on its next request rather than leaving a `ready` poster that
    /// answers `404`.
    pub async fn poster(
        &self,
        store: &Arc<Store>,
        source: ContentHash,
    ) -> Result<PathBuf, ApiError> {
        match Self::found(store, source, POSTER).await {
            Err(ApiError::NotFound(_)) if self.posters => {}
            found => return found,
        }
        if store.is_damaged(&source) {
            return Err(ApiError::BlobDamaged(source.to_hex()));
        }
        let path = Self::derived(store, source, POSTER)?;
        self.made_once(&path, || async {
            let _job = self.turn().await?;
            let s = store.clone();
            let made = web::block(move || make_poster(&s, source)).await??;
            tracing::info!(%source, "a poster frame whose file was gone was made again");
            Ok(made)
        })
        .await
    }

    /// A turn in the queue of picture jobs, held until dropped.
    async fn turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        self.jobs
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the variant queue is closed".into()))
    }

    /// The file at `path`, made by `make` unless it is there: the first request makes it,
    /// the others wait for it and find it made.
    async fn made_once<F, Fut>(&self, path: &Path, make: F) -> Result<PathBuf, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<PathBuf, ApiError>>,
    {
        let lock = self
            .making
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(path.to_path_buf())
            .or_default()
            .clone();
        let made = {
            let _turn = lock.lock().await;
            if path.is_file() {
                Ok(path.to_path_buf())
            } else {
                make().await
            }
        };
        let mut making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and this one: nobody else waits for this file.
        if Arc::strong_count(&lock) == 2 {
            making.remove(path);
        }
        made
    }

    async fn make(
        &self,
        store: &Arc<Store>,
        source: ContentHash,
        spec: Spec,
        base: Base,
    ) -> Result<PathBuf, ApiError> {
        // The poster first: remaking it takes a turn of its own.
        let poster = match base {
            Base::Original => None,
            Base::Poster => Some(self.poster(store, source).await?),
        };
        let _job = self.turn().await?;
        let store = store.clone();
        let limits = self.limits;
        let path = web::block(move || -> Result<PathBuf, ApiError> {
            let original;
            let from = match &poster {
                Some(p) => p.as_path(),
                None => {
                    original = store.blobs().local_file(&source)?;
                    original.path()
                }
            };
            let rendered = pictures::render(from, &spec, &limits)?;
            Ok(store.put_variant(&source, PIPELINE, &name(&spec, base), &rendered.bytes)?)
        })
        .await??;
        self.generated.fetch_add(1, Ordering::Relaxed);
        Ok(path)
    }

    /// After the upload of a video or an audio file, when ffmpeg is here: its length, a
    /// video's size and poster frame, learned in the background and written to its record.
    /// A failure leaves the upload as it is (and a video's poster `failed`).
    pub fn learn(state: &web::Data<crate::http::AppState>, record: &MediaRecord) {
        let video = record.kind == Kind::Video;
        if !state.variants.posters || !(video || record.kind == Kind::Audio) {
            return;
        }
        let (state, id, hash) = (state.clone(), record.id, record.hash);
        actix_web::rt::spawn(async move {
            let Ok(_job) = state.variants.jobs.acquire().await else {
                return;
            };
            let store = state.store.clone();
            let learned = web::block(move || learn_now(&store, id, hash, video)).await;
            if let Ok(Err(e)) | Err(e) = learned.map_err(ApiError::from) {
                tracing::warn!(%id, error = %e, "could not learn a video's or audio's length and poster");
            }
        });
    }
}

impl Variants {
    /// Learns again what a stop interrupted: every video whose poster is still pending, found
    /// through the kind index a page at a time, in the background.
    pub fn resume(state: &web::Data<crate::http::AppState>) {
        if !state.variants.posters {
            return;
        }
        let state = state.clone();
        actix_web::rt::spawn(async move {
            let mut before = None;
            loop {
                let query = crate::store::ListQuery {
                    kind: Some(Kind::Video),
                    include_private: true,
                    limit: 500,
                    before,
                    ..crate::store::ListQuery::default()
                };
                let store = state.store.clone();
                let Ok(Ok(page)) = web::block(move || store.list(&query)).await else {
                    return;
                };
                for r in page
                    .items
                    .iter()
                    .filter(|r| r.poster == Some(PosterState::Pending))
                {
                    Self::learn(&state, r);
                }
                match page.next {
                    Some(next) => before = Some(next),
                    None => return,
                }
            }
        });
    }
}

/// Makes the poster frame of the video `hash` and keeps it; returns its file. On a blocking
/// thread.
fn make_poster(store: &Store, hash: ContentHash) -> Result<PathBuf, ApiError> {
    let file = store.blobs().local_file(&hash)?;
    make_poster_of(store, hash, file.path())
}

/// [`make_poster`] from the video's local file at `path`.
fn make_poster_of(store: &Store, hash: ContentHash, path: &Path) -> Result<PathBuf, ApiError> {
    let scratch = tempfile::tempdir_in(store.layout().tmp())
        .map_err(|e| StoreError::io("make a scratch folder in tmp/", e))?;
    let bytes = pictures::video::poster(path, scratch.path())?;
    Ok(store.put_variant(&hash, PIPELINE, POSTER, &bytes)?)
}

/// The work of [`Variants::learn`], on a blocking thread.
fn learn_now(store: &Store, id: MediaId, hash: ContentHash, video: bool) -> Result<(), ApiError> {
    let file = store.blobs().local_file(&hash)?;
    let path = file.path();
    let probe = pictures::video::probe(path);
    let poster = video.then(|| make_poster_of(store, hash, path));
    if let Err(e) = &probe {
        tracing::warn!(%id, error = %e, "ffprobe could not read a stored file");
    }
    if let Some(Err(e)) = &poster {
        tracing::warn!(%id, error = %e, "ffmpeg could not make a poster");
    }
    let probe = probe.unwrap_or_default();
    let poster = poster.map(|made| made.map(|_| ()));
    store.learned(id, |r| {
        r.duration = probe.duration;
        if video {
            r.width = probe.width.or(r.width);
            r.height = probe.height.or(r.height);
            r.poster = Some(match &poster {
                Some(Ok(())) => PosterState::Ready,
                _ => PosterState::Failed,
            });
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDTHS: [u32; 3] = [160, 320, 640];

    /// [`wanted`] of a query string.
    fn asked(
        query: &str,
        accept: Option<&str>,
        content_type: &str,
    ) -> Result<Option<Wanted>, ApiError> {
        wanted(&query_pairs(query), accept, content_type, &WIDTHS)
    }

    #[test]
    fn queries_name_a_listed_size_and_a_known_image() {
        let png = "image/png";
        assert!(asked("", None, png).unwrap().is_none());
        assert!(asked("download=1", None, png).unwrap().is_none());
        let w = asked("w=320", None, png).unwrap().unwrap();
        assert_eq!(w.spec.width, Some(320));
        assert_eq!(w.spec.format, Format::Png);
        assert!(w.negotiated);
        let w = asked("w=320&format=jpg", Some("image/webp"), png)
            .unwrap()
            .unwrap();
        assert_eq!(w.spec.format, Format::Jpeg);
        assert!(!w.negotiated);
        for bad in [
            "w=321",
            "w=-1",
            "w=",
            "h=99999999999",
            "w=320&fit=fill",
            "format=webp",
        ] {
            assert!(asked(bad, None, png).is_err(), "{bad}");
        }
        assert!(asked("w=320", None, "application/pdf").is_err());
    }

    #[test]
    fn srcsets_stop_at_the_image_width() {
        assert_eq!(nearest(&WIDTHS, 300), 320);
        assert_eq!(nearest(&WIDTHS, 1000), 640);
        assert_eq!(
            srcset("/m/x", &WIDTHS, Some(200)),
            "/m/x?w=160 160w, /m/x?w=320 320w"
        );
        assert_eq!(srcset("/m/x", &WIDTHS, None).matches("w,").count(), 2);
    }

    #[test]
    fn webp_goes_where_it_is_taken() {
        let jpeg = "image/jpeg";
        let format = |accept| {
            asked("w=160", Some(accept), jpeg)
                .unwrap()
                .unwrap()
                .spec
                .format
        };
        assert_eq!(format("image/avif,image/webp,*/*;q=0.8"), Format::Webp);
        assert_eq!(format("image/webp;q=0"), Format::Jpeg);
        assert_eq!(format("*/*"), Format::Jpeg);
    }
}
