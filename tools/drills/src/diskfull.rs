//! A ClickHouse server of its own whose data directory is a small loop-mounted ext4 filesystem,
//! which the disk-full drill fills to the last block and frees again. Needs root (mount) and a
//! loop device; [`DiskFullServer::start`] says why when it cannot, and the drill is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use sck_testkit::{clickhouse_at, free_port, repo_root, wait_for};

/// Size of the filesystem: room for the server's own files and a drill's readings.
const IMAGE_MB: u64 = 96;

pub struct DiskFullServer {
    /// `host:port` of its HTTP interface.
    pub http: String,
    dir: PathBuf,
    mount: PathBuf,
    server: Option<Child>,
    mounted: bool,
}

impl DiskFullServer {
    /// Makes and mounts the filesystem, starts ClickHouse on it (users as the stack's server).
    pub fn start() -> anyhow::Result<DiskFullServer> {
        let dir = repo_root().join("target/drills/diskfull");
        let mount = dir.join("mnt");
        let mut me = DiskFullServer {
            http: String::new(),
            dir: dir.clone(),
            mount: mount.clone(),
            server: None,
            mounted: false,
        };
        // A mount left by an interrupted run goes first.
        let _ = Command::new("umount")
            .arg(&mount)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&mount).context("creating the drill's directory")?;
        let image = dir.join("fs.img");
        run("truncate", &["-s", &format!("{IMAGE_MB}M"), path(&image)?])?;
        run("mkfs.ext4", &["-q", "-F", "-m", "0", path(&image)?])?;
        run("mount", &["-o", "loop", path(&image)?, path(&mount)?])
            .context("mounting a loop filesystem (needs root and a loop device)")?;
        me.mounted = true;
        let users = repo_root().join(".stack/clickhouse/users.xml");
        let http_port = free_port();
        let config = dir.join("config.xml");
        std::fs::write(
            &config,
            config_xml(&mount, &dir, &users, http_port, free_port()),
        )?;
        let log = std::fs::File::create(dir.join("stdout.log"))?;
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", config.display()))
            .current_dir(&dir)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting clickhouse-server")?;
        me.server = Some(child);
        me.http = format!("127.0.0.1:{http_port}");
        let http = me.http.clone();
        if !wait_for(Duration::from_secs(60), || {
            clickhouse_at(&http, "SELECT 1").is_ok()
        }) {
            bail!(
                "the drill's ClickHouse did not start; see {}",
                dir.join("server.err.log").display()
            );
        }
        Ok(me)
    }

    /// Appends zeros to the filler until the filesystem has no block left; returns the bytes
    /// written. Called again while the disk is to stay full: ClickHouse frees blocks as it
    /// merges parts and removes the old ones, and small inserts would fit in them.
    pub fn fill(&self) -> anyhow::Result<u64> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.mount.join("filler"))?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(e).context("filling the filesystem"),
            }
        }
        let _ = f.sync_all();
        Ok(written)
    }

    /// Frees the space again.
    pub fn free(&self) -> anyhow::Result<()> {
        std::fs::remove_file(self.mount.join("filler")).context("removing the filler")
    }

    /// The server's error log (what it said while the disk was full).
    pub fn err_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.err.log")).unwrap_or_default()
    }
}

impl Drop for DiskFullServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let stopped = wait_for(Duration::from_secs(30), || {
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !stopped {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mount).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("a non-UTF-8 path")
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn config_xml(data: &Path, dir: &Path, users: &Path, http: u16, tcp: u16) -> String {
    let (data, dir, users) = (data.display(), dir.display(), users.display());
    format!(
        r#"<?xml version="1.0"?>
<!-- Written by sck-drills: the disk-full drill's ClickHouse, data on a small loop filesystem. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/server.log</log>
        <errorlog>{dir}/server.err.log</errorlog>
    </logger>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>{data}/data/</path>
    <tmp_path>{data}/tmp/</tmp_path>
    <user_files_path>{data}/user_files/</user_files_path>
    <format_schema_path>{data}/format_schemas/</format_schema_path>
    <users_config>{users}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>67108864</mark_cache_size>
</yandex>
"#
    )
}
