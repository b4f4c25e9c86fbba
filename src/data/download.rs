//! Downloading built-in datasets: each file from the first mirror that serves it, streamed to a
//! temporary file while its SHA-256 is computed, checked against the published digest, then
//! renamed into place. A failed or corrupt download leaves nothing behind.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// A file to fetch and its published SHA-256 (hex).
#[derive(Clone, Debug)]
pub struct RemoteFile {
    /// File name, appended to a mirror's base URL.
    pub name: String,
    /// Expected SHA-256, lowercase hex.
    pub sha256: String,
}

/// Where a built-in dataset is published, and its files.
#[derive(Clone, Debug)]
pub struct Remote {
    /// Base URLs, tried in order.
    pub mirrors: Vec<String>,
    /// The files.
    pub files: Vec<RemoteFile>,
}

fn files(list: [(&str, &str); 4]) -> Vec<RemoteFile> {
    list.iter().map(|(n, s)| RemoteFile { name: n.to_string(), sha256: s.to_string() }).collect()
}

/// The canonical mirrors and digests of `fashion-mnist` and `mnist`. The environment variable
/// `SIMCLR_MIRROR` replaces the mirror list with one base URL.
pub fn remote(slug: &str) -> Option<Remote> {
    let (mirrors, files) = match slug {
        "fashion-mnist" => (
            vec![
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            ],
            files([
                ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
                ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
                ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
                ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
            ]),
        ),
        "mnist" => (
            vec!["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
            files([
                ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
                ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
                ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
                ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
            ]),
        ),
        _ => return None,
    };
    let mirrors = match std::env::var("SIMCLR_MIRROR") {
        Ok(m) if !m.is_empty() => vec![m],
        _ => mirrors.into_iter().map(String::from).collect(),
    };
    Some(Remote { mirrors, files })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(900)))
        .build()
        .into()
}

/// Streams `url` into `tmp`, returning the SHA-256 of what was received.
fn fetch(agent: &ureq::Agent, url: &str, tmp: &Path, progress: bool) -> Result<String> {
    let mut resp = agent.get(url).call()?;
    let bar = match resp.body().content_length() {
        Some(len) if progress => ProgressBar::new(len),
        _ => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}").expect("template").progress_chars("=> "),
    );
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
    let mut reader = resp.body_mut().as_reader();
    let mut file = File::create(tmp)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        bar.inc(n as u64);
    }
    file.sync_all()?;
    bar.finish_and_clear();
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Downloads every file of `remote` missing from `dest` (created if needed).
pub fn download(remote: &Remote, dest: &Path, progress: bool) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let agent = agent();
    for f in &remote.files {
        let target = dest.join(&f.name);
        if target.is_file() {
            continue;
        }
        let tmp = dest.join(format!(".{}.part{}", f.name, std::process::id()));
        let mut failures = Vec::new();
        for mirror in &remote.mirrors {
            let url = format!("{}/{}", mirror.trim_end_matches('/'), f.name);
            match fetch(&agent, &url, &tmp, progress) {
                Ok(sum) if sum == f.sha256 => {
                    std::fs::rename(&tmp, &target).with_context(|| format!("cannot write {}", target.display()))?;
                    break;
                }
                Ok(sum) => failures.push(format!("{url}: SHA-256 {sum} does not match the published {}", f.sha256)),
                Err(e) => failures.push(format!("{url}: {e:#}")),
            }
        }
        let _ = std::fs::remove_file(&tmp);
        if !target.is_file() {
            bail!("cannot download {}: {}", f.name, failures.join("; "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// Serves `files` (name -> bytes) over HTTP on a loopback port for `requests` requests.
    fn serve(files: Vec<(String, Vec<u8>)>, requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut line = String::new();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                reader.read_line(&mut line).unwrap();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                match files.iter().find(|(n, _)| *n == path) {
                    Some((_, body)) => {
                        write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
                        stream.write_all(body).unwrap();
                    }
                    None => write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap(),
                }
            }
        });
        format!("http://{addr}")
    }

    fn sha(bytes: &[u8]) -> String {
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn downloads_verifies_and_falls_back_to_the_next_mirror() {
        let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist-sample/t10k-labels-idx1-ubyte.gz")).unwrap();
        let name = "t10k-labels-idx1-ubyte.gz".to_string();
        let good = serve(vec![(name.clone(), sample.clone())], 1);
        let missing = serve(vec![], 1);
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote { mirrors: vec![missing, good], files: vec![RemoteFile { name: name.clone(), sha256: sha(&sample) }] };
        download(&remote, dir.path(), false).unwrap();
        assert_eq!(std::fs::read(dir.path().join(&name)).unwrap(), sample);
        // Present files are not fetched again (no server is listening now).
        download(&remote, dir.path(), false).unwrap();
    }

    #[test]
    fn a_corrupt_download_is_rejected_and_leaves_nothing() {
        let name = "train-labels-idx1-ubyte.gz".to_string();
        let server = serve(vec![(name.clone(), b"tampered".to_vec())], 1);
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote { mirrors: vec![server], files: vec![RemoteFile { name: name.clone(), sha256: sha(b"original") }] };
        let err = download(&remote, dir.path(), false).unwrap_err().to_string();
        assert!(err.contains(&name) && err.contains("does not match"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn canonical_digests_are_pinned() {
        let r = remote("fashion-mnist").unwrap();
        assert_eq!(r.files.len(), 4);
        assert!(r.files.iter().all(|f| f.sha256.len() == 64));
        assert!(remote("cifar10").is_none());
    }
}
