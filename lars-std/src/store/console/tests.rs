//! Tests of the console's store over the route file: what its audit log says when a save fails.

use super::*;

#[test]
fn a_change_the_route_file_could_not_take_is_logged_as_not_made() {
    let dir = std::env::temp_dir().join(format!("lars-console-save-fails-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("routes.conf");
    std::fs::write(&path, "1001 1 10.0.0.1:80\n").unwrap();
    // The temporary file the save writes is a directory: the save fails, the file stays.
    std::fs::create_dir(dir.join("routes.tmp")).unwrap();
    let mut console = FileConsole::new(&path, None);
    let actor = Actor { user: "ann".into(), address: "127.0.0.1".into() };
    let edit = Edit::AddHost { addr: "10.0.0.2:80".parse().unwrap(), weight: 1 };
    assert!(console.apply((1001, 1), &edit, &actor).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1001 1 10.0.0.1:80\n");
    let audit = console.audit(Some((1001, 1)), 10).unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0].detail.starts_with("not made: "), "newest first: {audit:?}");
    assert_eq!(audit[1].detail, edit.detail());
    // Once the file can be written, the same change is made and logged once more.
    std::fs::remove_dir(dir.join("routes.tmp")).unwrap();
    assert_eq!(console.apply((1001, 1), &edit, &actor).unwrap(), 1);
    assert!(std::fs::read_to_string(&path).unwrap().contains("10.0.0.2:80"));
    assert_eq!(console.audit(None, 10).unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}
