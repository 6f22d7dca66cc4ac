//! The images mralab builds, offline, from Debian's packages alone: no registry is reachable, so
//! each is a root filesystem made by `debootstrap` from the Debian mirror apt already uses, packed
//! as a tar and built `FROM scratch` through testcontainers.
//!
//! - `mralab/ats:8.1`: Debian 11 (bullseye), `trafficserver` 8.1.10 with OpenSSL 1.1.1w, the
//!   generation of traffic server inside Expressway X14;
//! - `mralab/ats:9.2`: Debian 12 (bookworm), `trafficserver` 9.2 with OpenSSL 3.0.
//!
//! Each carries its own `openssl` and `mralab-supervise` (the first process of every container,
//! see [`crate::container`]). An image is labelled with the hash of its [`Recipe`] (suite,
//! packages, Dockerfile, the supervisor script) and rebuilt only when the recipe changes, or when
//! asked to.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use testcontainers::GenericBuildableImage;
use testcontainers::core::BuildImageOptions;
use testcontainers::runners::SyncBuilder as _;

use super::{ContainerError, block_on, engine, engine_error};

/// Where the supervisor is in every image.
pub const SUPERVISOR: &str = "/usr/local/sbin/mralab-supervise";
/// The supervisor script itself.
const SUPERVISOR_SCRIPT: &str = include_str!("mralab-supervise");
/// The label holding the recipe hash.
pub const RECIPE_LABEL: &str = "mralab.recipe";
/// The label listing the versions of the recipe's packages, as installed.
pub const PACKAGES_LABEL: &str = "mralab.packages";

/// How one image is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipe {
    /// `mralab/ats`.
    pub repository: &'static str,
    /// `8.1`.
    pub tag: &'static str,
    /// The Debian suite debootstrap installs: `bullseye`.
    pub suite: &'static str,
    /// `Debian 11`, for people.
    pub debian: &'static str,
    /// The packages installed beside the minimal base.
    pub packages: &'static [&'static str],
    /// A program of this workspace copied in (`mralab-node`), found beside the running binary
    /// ([`program_path`]); the recipe hash covers its bytes, so a rebuilt program makes the
    /// image stale. Such an image is built on a base image of the same root filesystem without
    /// the program (`<repository>-base`), so a new program costs a copy, not a debootstrap.
    pub program: Option<&'static str>,
}

/// ATS 8.1.10 + OpenSSL 1.1.1w: Expressway X14's generation.
pub const ATS_8_1: Recipe = Recipe {
    repository: "mralab/ats",
    tag: "8.1",
    suite: "bullseye",
    debian: "Debian 11",
    packages: &["trafficserver", "openssl"],
    program: None,
};

/// ATS 9.2 + OpenSSL 3.0, as on a Debian 12 host.
pub const ATS_9_2: Recipe = Recipe {
    repository: "mralab/ats",
    tag: "9.2",
    suite: "bookworm",
    debian: "Debian 12",
    packages: &["trafficserver", "openssl"],
    program: None,
};

/// The container fleet's node: a minimal Debian 12 (the host's release, so the workspace's
/// glibc build runs there) with `mralab-node`, the workspace's node program.
pub const NODE: Recipe = Recipe {
    repository: "mralab/node",
    tag: "12",
    suite: "bookworm",
    debian: "Debian 12",
    packages: &["libc6"],
    program: Some(NODE_PROGRAM),
};

/// The node program's name, as cargo builds it (`cargo build -p simulators --bin mralab-node`).
pub const NODE_PROGRAM: &str = "mralab-node";
/// Where a recipe's program is in its image.
pub const PROGRAM_DIR: &str = "/usr/local/bin";

/// Every image `cargo xtask images` builds.
pub const RECIPES: [Recipe; 3] = [ATS_8_1, ATS_9_2, NODE];

/// Where the copy of `program` an image is built from is: `MRALAB_NODE_PROGRAM` for the node
/// program, else `<program>.image` beside the running binary (`target/debug/`, or its parent for
/// a test binary in `deps/`). `cargo xtask images` (and every command that needs the image)
/// builds the program and stages it there ([`stage_program`]): a copy cargo never rewrites, so
/// `cargo test --workspace`, which links its own `mralab-node` with the tests' features, does not
/// make the image stale.
pub fn program_path(program: &str) -> Option<PathBuf> {
    if program == NODE_PROGRAM
        && let Some(path) = std::env::var_os("MRALAB_NODE_PROGRAM").filter(|p| !p.is_empty())
    {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let name = format!("{program}.image");
    [dir.join(&name), dir.parent()?.join(&name)].into_iter().find(|p| p.is_file())
}

/// Copies the program cargo just built (`built`) to where [`program_path`] finds it, unless the
/// copy there already holds the same bytes; returns the copy.
pub fn stage_program(program: &str, built: &Path) -> std::io::Result<PathBuf> {
    let dir = built.parent().ok_or_else(|| std::io::Error::other("the program has no folder"))?;
    let staged = dir.join(format!("{program}.image"));
    let bytes = fs::read(built)?;
    if fs::read(&staged).ok().as_deref() != Some(&bytes[..]) {
        let partial = dir.join(format!("{program}.image.partial"));
        fs::write(&partial, &bytes)?;
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&partial, fs::Permissions::from_mode(0o755))?;
        fs::rename(&partial, &staged)?;
    }
    Ok(staged)
}

/// The hash of a program's bytes (empty when it is not built).
fn program_hash(program: &str) -> String {
    let Some(bytes) = program_path(program).and_then(|p| fs::read(p).ok()) else { return String::new() };
    Sha256::digest(&bytes).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// What the engine holds for a recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    /// No image with that name.
    Missing,
    /// An image built from another recipe.
    Stale {
        /// Its recipe hash (empty when it has no label: not built by mralab).
        had: String,
    },
    /// Built from this recipe.
    Current {
        /// The package versions it was built with.
        packages: String,
    },
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct Built {
    /// `mralab/ats:8.1`.
    pub image: String,
    /// The package versions installed.
    pub packages: String,
    /// How long debootstrap took.
    pub debootstrap: Duration,
    /// How long the image build took (packing and the engine's build).
    pub build: Duration,
}

impl Recipe {
    /// `mralab/ats:8.1`.
    pub fn image(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    /// The Dockerfile, labelled with the recipe hash and the installed package versions.
    fn dockerfile(&self, packages: &str) -> String {
        dockerfile_with(&self.hash(), packages)
    }

    /// The hash of everything the image is made from (not of the package versions the mirror
    /// serves today: a point release does not force a rebuild; `--rebuild` does).
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"mralab image recipe 1\n");
        hasher.update(format!("{}\n{}\n{}\n", self.image(), self.suite, self.packages.join(",")));
        hasher.update(dockerfile_with("", ""));
        hasher.update(SUPERVISOR_SCRIPT.as_bytes());
        if let Some(program) = self.program {
            hasher.update(format!("program {program} {}\n", program_hash(program)));
        }
        hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    /// What the engine holds under this recipe's name.
    pub fn state(&self) -> Result<ImageState, ContainerError> {
        let docker = engine()?;
        match block_on(docker.inspect_image(&self.image()))? {
            Ok(inspect) => {
                let labels: HashMap<String, String> = inspect.config.and_then(|c| c.labels).unwrap_or_default();
                let had = labels.get(RECIPE_LABEL).cloned().unwrap_or_default();
                if had == self.hash() {
                    Ok(ImageState::Current { packages: labels.get(PACKAGES_LABEL).cloned().unwrap_or_default() })
                } else {
                    Ok(ImageState::Stale { had })
                }
            }
            Err(testcontainers::bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                Ok(ImageState::Missing)
            }
            Err(e) => Err(engine_error(&format!("inspecting {}", self.image()), e)),
        }
    }

    /// Fails unless the image is built from this recipe; checked once per process.
    pub fn check_built(&self) -> Result<(), ContainerError> {
        if let Some(program) = self.program
            && program_path(program).is_none()
        {
            return Err(ContainerError::Image {
                message: format!("{program} is not built and staged for its image: cargo xtask images"),
            });
        }
        static CHECKED: Mutex<Vec<Recipe>> = Mutex::new(Vec::new());
        if CHECKED.lock().is_ok_and(|c| c.contains(self)) {
            return Ok(());
        }
        match self.state()? {
            ImageState::Current { .. } => {
                if let Ok(mut checked) = CHECKED.lock() {
                    checked.push(*self);
                }
                Ok(())
            }
            ImageState::Missing => Err(ContainerError::Image { message: format!("image {} is missing", self.image()) }),
            ImageState::Stale { had } => Err(ContainerError::Image {
                message: format!(
                    "image {} was built from another recipe ({}; this checkout's is {})",
                    self.image(),
                    if had.is_empty() { "not by mralab".to_string() } else { had },
                    self.hash()
                ),
            }),
        }
    }

    /// Builds the image: debootstrap from `mirror` into a temporary folder, the supervisor added,
    /// packed and built. `progress` hears what happens, a line at a time.
    pub fn build(&self, mirror: &str, progress: &(dyn Fn(&str) + Sync)) -> Result<Built, ContainerError> {
        if let Some(program) = self.program {
            return self.build_with_program(program, mirror, progress);
        }
        let fail = |reason: String| ContainerError::Build { image: self.image(), reason };
        // The image this build replaces, removed once the new one is tagged.
        let previous = block_on(engine()?.inspect_image(&self.image()))?.ok().and_then(|i| i.id);
        let work = tempfile::Builder::new()
            .prefix("mralab-image-")
            .tempdir_in(scratch_dir())
            .map_err(|e| fail(format!("cannot make a work folder: {e}")))?;
        let _registered = crate::cleanup::folder(work.path());
        let rootfs = work.path().join("rootfs");
        let started = Instant::now();
        debootstrap(self, mirror, &rootfs, progress).map_err(fail)?;
        let debootstrap = started.elapsed();

        let started = Instant::now();
        let packages = installed_versions(&rootfs, self.packages);
        let supervisor = rootfs.join(SUPERVISOR.trim_start_matches('/'));
        write_executable(&supervisor, SUPERVISOR_SCRIPT).map_err(|e| fail(format!("adding the supervisor: {e}")))?;
        for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            clear_files(&rootfs.join(cache));
        }
        progress(&format!("{}: packing the root filesystem", self.image()));
        let tar = work.path().join("rootfs.tar");
        pack(&rootfs, &tar).map_err(fail)?;
        progress(&format!("{}: building the image", self.image()));
        let _image = GenericBuildableImage::new(self.repository, self.tag)
            .with_dockerfile_string(self.dockerfile(&packages))
            .with_file(&tar, "rootfs.tar")
            .build_image_with(BuildImageOptions::new().with_skip_if_exists(false))
            .map_err(|e| fail(format!("the engine's build failed: {e}")))?;
        self.remove_replaced(previous)?;
        Ok(Built { image: self.image(), packages, debootstrap, build: started.elapsed() })
    }
}

impl Recipe {
    /// The base of a recipe with a program: the same root filesystem, no program.
    pub fn base(&self) -> Recipe {
        let repository: &'static str = match self.repository {
            "mralab/node" => "mralab/node-base",
            other => other,
        };
        Recipe { repository, program: None, ..*self }
    }

    /// Builds the base if it is not current, then this image: the base and the program.
    fn build_with_program(
        &self,
        program: &str,
        mirror: &str,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Built, ContainerError> {
        let fail = |reason: String| ContainerError::Build { image: self.image(), reason };
        let base = self.base();
        let started = Instant::now();
        let packages = match base.state()? {
            ImageState::Current { packages } => packages,
            _ => base.build(mirror, progress)?.packages,
        };
        let debootstrap = started.elapsed();
        let started = Instant::now();
        let path = program_path(program)
            .ok_or_else(|| fail(format!("{program} is not built and staged: cargo xtask images builds it")))?;
        let previous = block_on(engine()?.inspect_image(&self.image()))?.ok().and_then(|i| i.id);
        progress(&format!("{}: {} on {}", self.image(), path.display(), base.image()));
        let dockerfile = format!(
            "FROM {}\nCOPY {program} {PROGRAM_DIR}/{program}\nLABEL {RECIPE_LABEL}=\"{}\" {PACKAGES_LABEL}=\"{packages}\"\nCMD [\"{SUPERVISOR}\"]\n",
            base.image(),
            self.hash()
        );
        let _image = GenericBuildableImage::new(self.repository, self.tag)
            .with_dockerfile_string(dockerfile)
            .with_file(&path, program)
            .build_image_with(BuildImageOptions::new().with_skip_if_exists(false))
            .map_err(|e| fail(format!("the engine's build failed: {e}")))?;
        self.remove_replaced(previous)?;
        Ok(Built { image: self.image(), packages, debootstrap, build: started.elapsed() })
    }
}

impl Recipe {
    /// Removes `previous`, the image this recipe's tag named before a rebuild, once the tag
    /// names another: untagged now, so nobody names it again. A container still running it keeps
    /// it (the removal fails, harmlessly; the engine's prune takes it later).
    fn remove_replaced(&self, previous: Option<String>) -> Result<(), ContainerError> {
        if let Some(old) = previous {
            let now = block_on(engine()?.inspect_image(&self.image()))?.ok().and_then(|i| i.id);
            if now.as_ref() != Some(&old) {
                let _ = block_on(engine()?.remove_image(
                    &old,
                    None::<testcontainers::bollard::query_parameters::RemoveImageOptions>,
                    None,
                ));
            }
        }
        Ok(())
    }
}

/// The Dockerfile of every image: the root filesystem and its labels.
fn dockerfile_with(hash: &str, packages: &str) -> String {
    format!(
        "FROM scratch\nADD rootfs.tar /\nLABEL {RECIPE_LABEL}=\"{hash}\" {PACKAGES_LABEL}=\"{packages}\"\nCMD [\"{SUPERVISOR}\"]\n"
    )
}

/// Where image work folders go: `/var/tmp` (a root filesystem is ~300 MB; `/tmp` may be small).
fn scratch_dir() -> PathBuf {
    let var_tmp = PathBuf::from("/var/tmp");
    if var_tmp.is_dir() { var_tmp } else { std::env::temp_dir() }
}

/// The Debian mirror: `MRALAB_DEBIAN_MIRROR`, else the first one apt uses, else deb.debian.org.
pub fn debian_mirror() -> String {
    if let Ok(mirror) = std::env::var("MRALAB_DEBIAN_MIRROR")
        && !mirror.is_empty()
    {
        return mirror;
    }
    let mut sources = Vec::new();
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        sources.extend(paths.into_iter().filter_map(|p| fs::read_to_string(p).ok()));
    }
    sources.extend(fs::read_to_string("/etc/apt/sources.list").ok());
    sources
        .iter()
        .flat_map(|text| text.lines())
        .find_map(|line| {
            let line = line.trim();
            let uris = line.strip_prefix("URIs:").map(str::trim).or_else(|| {
                line.strip_prefix("deb ").map(|rest| rest.split_whitespace().find(|w| w.contains("://")).unwrap_or(""))
            })?;
            uris.split_whitespace().find(|u| u.trim_end_matches('/').ends_with("/debian")).map(str::to_string)
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_string())
}

/// Runs debootstrap, reporting its phases and every 25th package.
fn debootstrap(recipe: &Recipe, mirror: &str, rootfs: &Path, progress: &(dyn Fn(&str) + Sync)) -> Result<(), String> {
    let image = recipe.image();
    progress(&format!("{image}: debootstrap {} ({}) from {mirror}", recipe.suite, recipe.debian));
    let mut child = Command::new("debootstrap")
        .arg("--variant=minbase")
        .args((!recipe.packages.is_empty()).then(|| format!("--include={}", recipe.packages.join(","))))
        .arg(recipe.suite)
        .arg(rootfs)
        .arg(mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "debootstrap is not installed: apt-get install debootstrap".to_string()
            } else {
                format!("cannot run debootstrap: {e}")
            }
        })?;
    let stderr = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(err), &mut text);
            text
        })
    });
    let mut last_phase = String::new();
    let mut counted = 0usize;
    let mut tail: Vec<String> = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            tail.push(line.clone());
            if tail.len() > 10 {
                tail.remove(0);
            }
            let Some(rest) = line.strip_prefix("I: ") else { continue };
            let phase = rest.split_whitespace().next().unwrap_or("").to_string();
            counted += 1;
            if phase != last_phase {
                progress(&format!("{image}: {rest}"));
                last_phase = phase;
                counted = 0;
            } else if counted.is_multiple_of(25) {
                progress(&format!("{image}: {rest} ({counted} so far in this phase)"));
            }
        }
    }
    let status = child.wait().map_err(|e| format!("debootstrap: {e}"))?;
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        let log = fs::read_to_string(rootfs.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let log_tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(format!(
            "debootstrap {} from {mirror} failed ({status}):\n{}\n{}\n{}",
            recipe.suite,
            tail.join("\n"),
            err.trim_end(),
            log_tail.join("\n")
        ));
    }
    Ok(())
}

/// `trafficserver=8.1.10+ds-1.2+deb11u1 openssl=1.1.1w-0+deb11u1`, read from the root
/// filesystem's dpkg status.
fn installed_versions(rootfs: &Path, packages: &[&str]) -> String {
    let status = fs::read_to_string(rootfs.join("var/lib/dpkg/status")).unwrap_or_default();
    let mut found = Vec::new();
    for stanza in status.split("\n\n") {
        let field = |name: &str| stanza.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        if let (Some(package), Some(version)) = (field("Package:"), field("Version:"))
            && packages.contains(&package)
        {
            found.push(format!("{package}={version}"));
        }
    }
    found.sort();
    found.join(" ")
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// Removes the plain files directly in `dir` (apt's downloaded packages and lists).
fn clear_files(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Packs `rootfs` into the tar at `to`, owners numeric, without the contents of `/dev`, `/proc`
/// and `/sys` (the engine provides them). GNU tar keeps hard links, devices and modes exactly.
fn pack(rootfs: &Path, to: &Path) -> Result<(), String> {
    let out = Command::new("tar")
        .args(["--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "-C"])
        .arg(rootfs)
        .arg("-cf")
        .arg(to)
        .arg(".")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !out.status.success() {
        return Err(format!("tar failed: {}", String::from_utf8_lossy(&out.stderr).trim_end()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_hash_apart_and_stably() {
        assert_ne!(ATS_8_1.hash(), ATS_9_2.hash());
        assert_eq!(ATS_8_1.hash(), ATS_8_1.hash());
        assert_eq!(ATS_8_1.hash().len(), 24);
    }

    #[test]
    fn the_dockerfile_labels_the_recipe() {
        let file = ATS_8_1.dockerfile("trafficserver=8.1.10");
        assert!(file.starts_with("FROM scratch\nADD rootfs.tar /\n"));
        assert!(file.contains(&format!("{RECIPE_LABEL}=\"{}\"", ATS_8_1.hash())));
    }

    #[test]
    fn reads_package_versions_from_dpkg_status() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("var/lib/dpkg")).expect("mkdir");
        fs::write(
            dir.path().join("var/lib/dpkg/status"),
            "Package: openssl\nStatus: install ok installed\nVersion: 1.1.1w-0+deb11u1\n\n\
             Package: libc6\nVersion: 2.31\n\nPackage: trafficserver\nVersion: 8.1.10+ds-1.2\n",
        )
        .expect("write");
        assert_eq!(
            installed_versions(dir.path(), &["trafficserver", "openssl"]),
            "openssl=1.1.1w-0+deb11u1 trafficserver=8.1.10+ds-1.2"
        );
    }
}
