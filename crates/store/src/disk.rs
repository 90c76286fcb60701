//! What the data directory sits on: free space (for the disk-full guard) and whether it is a
//! persistent mount of its own (from `/proc/self/mountinfo`).

use std::path::Path;

use serde::Serialize;

use super::StoreError;

/// Below this much free space new uploads are refused, by default: 5 % of the disk, at most
/// 256 MiB, so a 1 GiB disk keeps ~51 MiB and a big one keeps 256 MiB for sled and in-flight work.
pub fn default_reserve(total: u64) -> u64 {
    (total / 20).min(256 << 20)
}

/// The space of the filesystem holding a path.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Space {
    /// Bytes that a writer without root's privileges can still use.
    pub free_bytes: u64,
    /// The filesystem's size, in bytes.
    pub total_bytes: u64,
}

/// The space of the filesystem holding `path`, from `statvfs`.
pub fn space(path: &Path) -> Result<Space, StoreError> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| StoreError::io("read free disk space", std::io::Error::from(e)))?;
    let frsize = st.fragment_size() as u64;
    Ok(Space {
        // f_bavail: what an unprivileged writer can still use.
        free_bytes: st.blocks_available() as u64 * frsize,
        total_bytes: st.blocks() as u64 * frsize,
    })
}

/// Whether the data directory would survive a restart or a redeploy, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Persistence {
    /// True when the data directory has a mount of its own, on a filesystem that keeps its
    /// contents.
    pub persistent: bool,
    /// The verdict as a sentence.
    pub reason: String,
    /// The filesystem type of the mount holding the data directory.
    pub fs_type: String,
    /// Where that mount is; empty when no mount was found.
    pub mount_point: String,
}

/// Filesystems that do not outlive the process, the container or the machine's uptime.
const VOLATILE: &[(&str, &str)] = &[
    ("tmpfs", "memory, emptied on every restart"),
    ("ramfs", "memory, emptied on every restart"),
    (
        "overlay",
        "a container's writable layer, lost when the container is recreated",
    ),
    (
        "aufs",
        "a container's writable layer, lost when the container is recreated",
    ),
    ("squashfs", "a read-only image"),
];

/// Decides from the mount table whether `path` (canonical) is on a persistent disk.
pub fn verdict(mountinfo: &str, path: &Path) -> Persistence {
    let mut best: Option<(String, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mount_point), Some(fs_type)) = (fields.get(4), fields.get(sep + 1)) else {
            continue;
        };
        let mount_point = unescape(mount_point);
        if path.starts_with(&mount_point)
            && best
                .as_ref()
                .is_none_or(|(m, _)| mount_point.len() >= m.len())
        {
            best = Some((mount_point, fs_type.to_string()));
        }
    }
    let Some((mount_point, fs_type)) = best else {
        return Persistence {
            persistent: false,
            reason: "No mount table entry covers the data directory".into(),
            fs_type: "unknown".into(),
            mount_point: String::new(),
        };
    };
    let (persistent, reason) = if let Some((_, why)) = VOLATILE.iter().find(|(t, _)| *t == fs_type)
    {
        (false, format!("The data directory is on {fs_type}: {why}"))
    } else if mount_point == "/" {
        (
            false,
            "The data directory is on the root filesystem, not on a disk of its own; in a container \
             that is lost on every redeploy (on a VM's own disk this warning is harmless)"
                .to_owned(),
        )
    } else {
        (
            true,
            format!("The data directory is on its own {fs_type} mount at {mount_point}"),
        )
    };
    Persistence {
        persistent,
        reason,
        fs_type,
        mount_point,
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The verdict for a real directory on this machine.
pub fn persistence(path: &Path) -> Persistence {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => verdict(&text, &canonical),
        Err(e) => Persistence {
            persistent: false,
            reason: format!("could not read /proc/self/mountinfo: {e}"),
            fs_type: "unknown".into(),
            mount_point: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:25 / /tmp/ram rw - tmpfs tmpfs rw,size=20480k
31 22 7:0 / /var/data rw,relatime shared:5 - ext4 /dev/loop0 rw
32 22 0:40 / /srv/my\\040disk rw - xfs /dev/sdb rw
33 1 0:50 / /overlayroot rw - overlay overlay rw,lowerdir=/a
";

    #[test]
    fn verdicts_for_root_tmpfs_ext4_and_overlay() {
        let root = verdict(MOUNTINFO, Path::new("/home/app/data"));
        assert!(
            !root.persistent && root.reason.contains("root filesystem"),
            "{root:?}"
        );
        let tmp = verdict(MOUNTINFO, Path::new("/tmp/ram/data"));
        assert!(!tmp.persistent && tmp.fs_type == "tmpfs", "{tmp:?}");
        let disk = verdict(MOUNTINFO, Path::new("/var/data"));
        assert!(
            disk.persistent && disk.fs_type == "ext4" && disk.mount_point == "/var/data",
            "{disk:?}"
        );
        let spaced = verdict(MOUNTINFO, Path::new("/srv/my disk/shoebox"));
        assert!(spaced.persistent && spaced.fs_type == "xfs", "{spaced:?}");
        let overlay = verdict(MOUNTINFO, Path::new("/overlayroot/data"));
        assert!(
            !overlay.persistent && overlay.reason.contains("container"),
            "{overlay:?}"
        );
        // A sibling whose name merely starts like a mount point is not under it.
        let sibling = verdict(MOUNTINFO, Path::new("/var/database"));
        assert_eq!(sibling.mount_point, "/");
    }

    #[test]
    fn reserve_fits_small_and_large_disks() {
        assert_eq!(default_reserve(1 << 30), (1 << 30) / 20);
        assert_eq!(default_reserve(100 << 30), 256 << 20);
    }
}
