//! Filesystems mounted for one test (a size-limited tmpfs, a small loop ext4), unmounted on
//! drop. Mounting needs root; without it, or without loop devices, a test cannot run: see
//! [`unavailable`](super::unavailable).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Mount {
    dir: tempfile::TempDir,
    image: Option<PathBuf>,
}

fn run(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

impl Mount {
    pub fn tmpfs(size: &str) -> Option<Mount> {
        if !is_root() {
            super::unavailable("mounting a test filesystem needs root");
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let ok = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()));
        if !ok {
            super::unavailable("could not mount a tmpfs here");
            return None;
        }
        Some(Mount { dir, image: None })
    }

    /// A loop ext4 of `size_mib`, mounted with `options` (besides `loop`). No blocks are
    /// reserved for root, so the disk fills for root as for anyone.
    pub fn ext4_with(size_mib: u64, options: &str) -> Option<Mount> {
        if !is_root() {
            super::unavailable("mounting a test filesystem needs root");
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let image = tempfile::Builder::new()
            .prefix("shoebox-ext4-")
            .suffix(".img")
            .tempfile()
            .ok()?
            .into_temp_path()
            .keep()
            .ok()?;
        let made = run(Command::new("truncate")
            .args(["-s", &format!("{size_mib}M")])
            .arg(&image))
            && run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0"])
                .arg(&image))
            && run(Command::new("mount")
                .args(["-o", &format!("loop,{options}")])
                .arg(&image)
                .arg(dir.path()));
        if !made {
            let _ = std::fs::remove_file(&image);
            super::unavailable("could not make and mount a loop ext4 here");
            return None;
        }
        Some(Mount {
            dir,
            image: Some(image),
        })
    }

    pub fn ext4(size_mib: u64) -> Option<Mount> {
        Self::ext4_with(size_mib, "defaults")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The block device behind the mount (`loop3` for /dev/loop3).
    pub fn device_name(&self) -> String {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", "--target"])
            .arg(self.dir.path())
            .output()
            .expect("findmnt");
        let source = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        source.rsplit('/').next().unwrap_or_default().to_owned()
    }

    /// Fills the filesystem to the last block with a file of its own, as another program
    /// could; returns the file.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.path().join("filler");
        let free = free_bytes(self.dir.path());
        let _ = Command::new("fallocate")
            .args(["-l", &free.to_string()])
            .arg(&path)
            .output();
        // fallocate leaves the odd block for metadata; dd takes what is left.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096", "oflag=append", "conv=notrunc"])
            .arg(format!("of={}", path.with_extension("more").display()))
            .output();
        assert!(
            free_bytes(self.dir.path()) < 64 << 10,
            "the disk is full: {} bytes free",
            free_bytes(self.dir.path())
        );
        path
    }
}

pub fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
        if let Some(image) = &self.image {
            let _ = std::fs::remove_file(image);
        }
    }
}
