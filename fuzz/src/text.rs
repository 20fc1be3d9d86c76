//! Text checks: the route-file parser and the INI loader with the config readers behind it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use lars_std::config::{Ini, ReactorConfig};
use lars_std::store::file::RouteFile;

/// The route-file parser: any text parses or fails with an error naming the file and a line,
/// and a table that parses renders to text that parses to the same routes; so do all its
/// lines, out of rotation included.
pub fn route_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("routes.conf");
    let table = match RouteFile::parse(&text, path, 7) {
        Ok(table) => table,
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("routes.conf:"), "the error names no file and line: {message}");
            return;
        }
    };
    assert_eq!(table.version, 7);
    assert!(table.routes.values().all(|hosts| !hosts.is_empty()), "a route without hosts");
    let rendered = RouteFile::render(&table);
    let again = RouteFile::parse(&rendered, path, 7).expect("a rendered table parses");
    assert_eq!(again.routes, table.routes, "rendering changed the routes");
    // Every line, out of rotation included, as the console and `lars route` rewrite them.
    let lines = RouteFile::parse_lines(text.as_bytes(), path).expect("the served routes parsed");
    let served = lines.values().flatten().filter(|h| h.in_rotation).count();
    assert_eq!(served, table.host_count(), "the served hosts are the lines in rotation");
    let rendered = RouteFile::render_lines(&lines);
    let again = RouteFile::parse_lines(rendered.as_bytes(), path).expect("rendered lines parse");
    assert_eq!(again, lines, "rendering changed the lines");
}

/// The INI loader, from the bytes of a file, and every reader of the daemons' settings over
/// what it loads: they answer with a value or an error, never a panic.
pub fn ini(data: &[u8]) {
    let path = scratch_file();
    let written = std::fs::File::create(&path).and_then(|mut file| file.write_all(data));
    written.expect("the fuzz target writes its scratch file");
    let Ok(ini) = Ini::load(&path) else { return };
    for warning in ini.warnings() {
        assert!(warning.to_string().contains(&path.display().to_string()), "{warning}");
    }
    let _ = ReactorConfig::from_ini(&ini, 7778);
    let _ = lars_std::pool::PoolConfig::from_ini(&ini, 65535);
    let mut agent = lars_core::agent::AgentConfig::default();
    let _ = lars_std::agent::read_agent_config(&ini, &mut agent);
}

/// One scratch file per fuzzing process, in memory where the machine has `/dev/shm`.
fn scratch_file() -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
    dir.join(format!("lars-fuzz-ini-{}.conf", std::process::id()))
}
