//! Reading captures back: capture files (`.jsonl.gz`, or plain `.jsonl`), a truncated
//! last line (a file still being written, or cut by a crash) ending the read, not failing
//! it; and HAR files (`.har`).

use super::record::Record;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: line {line} is not a capture record: {source}")]
    Record {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path} is not a HAR file: {source}")]
    Har {
        path: String,
        source: serde_json::Error,
    },
}

/// Every record of a capture file (`.jsonl.gz`, or plain `.jsonl`), or of a HAR file
/// (`.har`), in order.
pub fn read(path: &Path) -> Result<Vec<Record>, ReadError> {
    let name = path.display().to_string();
    let io = |source| ReadError::Io {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "har") {
        let har: super::har::Har =
            serde_json::from_reader(BufReader::new(file)).map_err(|source| ReadError::Har {
                path: name.clone(),
                source,
            })?;
        return Ok(super::har::records(&har));
    }
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        // A file still being written (or cut short) ends where its data does.
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(r) => out.push(r),
            Err(source) if source.is_eof() => break,
            Err(source) => {
                return Err(ReadError::Record {
                    path: name,
                    line: i + 1,
                    source,
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::{rfc3339, Answer, Body, Request, VERSION};

    #[test]
    fn a_truncated_file_reads_up_to_its_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let record = Record {
            v: VERSION,
            time: rfc3339(1.0),
            route: Some("r".into()),
            request: Request {
                method: "GET".into(),
                path: "/a".into(),
                query: Some("x=1".into()),
                headers: vec![("accept".into(), "*/*".into())],
                body: Body::default(),
            },
            response: Answer {
                status: 200,
                headers: vec![],
                body: Body {
                    body: "ok".into(),
                    body_base64: None,
                },
                latency_ms: 1.5,
            },
        };
        let line = serde_json::to_string(&record).unwrap();
        let path = dir.path().join("c.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        use std::io::Write;
        writeln!(gz, "{line}\n{line}").unwrap();
        gz.write_all(&line.as_bytes()[..20]).unwrap();
        gz.flush().unwrap();
        // Not finished: the gzip stream has no trailer, as a file being written.
        let bytes = gz.get_ref().clone();
        std::fs::write(&path, bytes).unwrap();
        let read_back = read(&path).unwrap();
        assert_eq!(read_back, vec![record.clone(), record]);
        assert_eq!(read_back[0].request.target(), "/a?x=1");
    }
}
