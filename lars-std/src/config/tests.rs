//! Tests of the INI loader, the config values and their origins.

use super::*;

/// The original `lars_reporter.conf`, including its misspelt `[repoter]` section.
const REPORTER_CONF: &str = "[reactor]\nmaxConn = 1024\nthreadNum = 5\nip = 127.0.0.1\nport = 7779\n\n\
    [mysql]\ndb_host = 127.0.0.1\ndb_port = 3306\ndb_user = root\ndb_passwd = aceld\ndb_name = lars_dns\n\n\
    [repoter]\ndb_thread_cnt = 3\n";

#[test]
fn reads_an_original_conf_file_unchanged() {
    let ini = Ini::parse(REPORTER_CONF, Path::new("lars_reporter.conf")).unwrap();
    let reactor = ReactorConfig::from_ini(&ini, 7779).unwrap();
    assert_eq!(
        reactor,
        ReactorConfig {
            ip: [127, 0, 0, 1].into(),
            port: 7779,
            max_conn: 1024,
            thread_num: 5,
            allow: lars_core::access::Cidr::LOOPBACK.to_vec(),
            header_timeout: lars_core::time::Duration::from_secs(10),
            body_timeout: lars_core::time::Duration::from_secs(30),
            idle_timeout: None,
            spin: true,
        }
    );
    let timeouts = Ini::parse(
        "[reactor]\nheaderTimeout = 0.5\nidleTimeout = 60\nbodyTimeout = 0\n",
        Path::new("t.conf"),
    )
    .unwrap();
    assert_eq!(
        ReactorConfig::from_ini(&timeouts, 1).unwrap_err().to_string(),
        "t.conf:4: key `reactor.bodyTimeout`: must be more than 0"
    );
    let timeouts =
        Ini::parse("[reactor]\nheaderTimeout = 0.5\nidleTimeout = 60\n", Path::new("t.conf")).unwrap();
    let reactor = ReactorConfig::from_ini(&timeouts, 1).unwrap();
    assert_eq!(reactor.header_timeout, lars_core::time::Duration::from_millis(500));
    assert_eq!(reactor.idle_timeout, Some(lars_core::time::Duration::from_secs(60)));
    let quiet = Ini::parse("[reactor]\nspin = off\n", Path::new("s.conf")).unwrap();
    assert!(!ReactorConfig::from_ini(&quiet, 1).unwrap().spin, "the adaptive wait can be turned off");
    let bad = Ini::parse("[reactor]\nspin = sometimes\n", Path::new("s.conf")).unwrap();
    assert!(
        ReactorConfig::from_ini(&bad, 1).unwrap_err().to_string().starts_with("s.conf:2: key `reactor.spin`")
    );
    let bad = Ini::parse("[reactor]\nidleTimeout = forever\n", Path::new("t.conf")).unwrap();
    assert_eq!(
        ReactorConfig::from_ini(&bad, 1).unwrap_err().to_string(),
        "t.conf:2: key `reactor.idleTimeout`: `forever` is not a number of seconds from 0 to 86400"
    );
    assert_eq!(ini.get_str("mysql", "db_passwd"), Some("aceld"));
    assert_eq!(ini.get("repoter", "db_thread_cnt", 0u32), Ok(3));
    assert_eq!(ini.get("mysql", "missing", 7u16), Ok(7));
}

#[test]
fn an_allowlist_is_cidr_blocks_and_a_bad_one_names_its_line() {
    use lars_core::access::Cidr;
    let ini =
        Ini::parse("[reactor]\nallow = 10.0.0.0/8, 2001:db8::/32 127.0.0.1\n", Path::new("d.conf")).unwrap();
    let allow: Vec<Cidr> = ini.get("reactor", "allow", Vec::new()).unwrap();
    let expected: Vec<Cidr> =
        ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1/32"].iter().map(|c| Cidr::parse(c).unwrap()).collect();
    assert_eq!(allow, expected);
    let bad = Ini::parse("[reactor]\nallow = 10.0.0.1/8\n", Path::new("d.conf")).unwrap();
    assert_eq!(
        ReactorConfig::from_ini(&bad, 1).unwrap_err().to_string(),
        "d.conf:2: key `reactor.allow`: `10.0.0.1/8` is not a list of CIDR blocks (`10.0.0.1/8`: the \
         address has bits set past its prefix length)"
    );
}

#[test]
fn a_codec_is_auto_native_or_lars() {
    use lars_core::wire::{Codec, CodecChoice};
    let text = "[dnsserver]\ncodec = Lars\n[reporter]\ncodec = orig\n";
    let ini = Ini::parse(text, Path::new("lars_lb_agent.conf")).unwrap();
    assert_eq!(ini.get("dnsserver", "codec", CodecChoice::Auto), Ok(CodecChoice::Fixed(Codec::Lars)));
    assert_eq!(
        ini.get("reporter", "codec", CodecChoice::Auto).unwrap_err().to_string(),
        "lars_lb_agent.conf:4: key `reporter.codec`: `orig` is not auto, native or lars"
    );
    assert_eq!(ini.get("dnsserver", "missing", CodecChoice::Auto), Ok(CodecChoice::Auto));
}

#[test]
fn errors_name_the_file_the_line_and_the_key() {
    let ini = Ini::parse("# comment\n[reactor]\nport = 77x\n", Path::new("/etc/lars/dns.conf")).unwrap();
    let error = ini.get("reactor", "port", 0u16).unwrap_err();
    assert_eq!(
        error.to_string(),
        "/etc/lars/dns.conf:3: key `reactor.port`: `77x` is not a number in the range of u16"
    );
    let error = Ini::parse("port = 1\n", Path::new("a.conf")).unwrap_err();
    assert_eq!(error.to_string(), "a.conf:1: key `port`: key outside any [section]");
    let skipped = Ini::parse("[a]\njust words\n= 3\n[ ]\nk = v\n", Path::new("b.conf")).unwrap();
    let warnings: Vec<String> = skipped.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "b.conf:2: skipped: not `key = value`",
            "b.conf:3: skipped: a value without a key",
            "b.conf:4: empty section name: the keys below it are not read",
        ]
    );
    assert_eq!(skipped.get_str("a", "k"), None, "k is in the unnamed section");
    let error = Ini::load(Path::new("/nonexistent/lars.conf")).unwrap_err();
    assert!(error.to_string().starts_with("/nonexistent/lars.conf: cannot read the file"), "{error}");
    let zero = Ini::parse("[reactor]\nthreadNum = 0\n", Path::new("c.conf")).unwrap();
    assert_eq!(
        ReactorConfig::from_ini(&zero, 1).unwrap_err().to_string(),
        "c.conf:2: key `reactor.threadNum`: must be from 1 to 256"
    );
    let many = Ini::parse("[reactor]\nthreadNum = 70000\n", Path::new("c.conf")).unwrap();
    assert_eq!(
        ReactorConfig::from_ini(&many, 1).unwrap_err().to_string(),
        "c.conf:2: key `reactor.threadNum`: must be from 1 to 256"
    );
    let no_conns = Ini::parse("[reactor]\n\nmaxConn = 0\n", Path::new("c.conf")).unwrap();
    assert_eq!(
        ReactorConfig::from_ini(&no_conns, 1).unwrap_err().to_string(),
        "c.conf:3: key `reactor.maxConn`: must be at least 1"
    );
    let rate = Ini::parse("[loadbalance]\nsucc_rate = 1.5\nerr_rate = NaN\n", Path::new("a.conf")).unwrap();
    assert_eq!(
        rate.get("loadbalance", "succ_rate", Fraction(0.0)).unwrap_err().to_string(),
        "a.conf:2: key `loadbalance.succ_rate`: `1.5` is not a fraction from 0 to 1"
    );
    assert!(rate.get("loadbalance", "err_rate", Fraction(0.0)).is_err());
}

#[test]
fn a_byte_order_mark_and_comments_in_another_encoding_are_read() {
    let dir = std::env::temp_dir().join(format!("lars-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gbk.conf");
    // A BOM, then GBK comments ("配置" is 0xc5 0xe4 0xd6 0xc3), CRLF line ends.
    let mut bytes = b"\xef\xbb\xbf# \xc5\xe4\r\n[reactor]\r\n# \xc5\xe4\xd6\xc3\r\nport = 7778\r\n".to_vec();
    std::fs::write(&path, &bytes).unwrap();
    let ini = Ini::load(&path).unwrap();
    assert_eq!(ini.get("reactor", "port", 0u16), Ok(7778));
    bytes.extend_from_slice(b"ip = \xc5\xe4\r\n");
    std::fs::write(&path, &bytes).unwrap();
    let error = Ini::load(&path).unwrap_err();
    assert_eq!(error.origin, Origin::File { path: path.clone(), line: 5 });
    assert!(error.message.contains("not valid UTF-8"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flags_override_env_which_overrides_the_file() {
    let mut ini = Ini::parse("[reactor]\nport = 7778\nip = 0.0.0.0\n", Path::new("dns.conf")).unwrap();
    let env = [("LARS_REACTOR_PORT".into(), "9000".into()), ("LARS_REACTOR_IP".into(), "bad".into())];
    ini.apply_env(env, &ReactorConfig::KEYS).unwrap();
    assert_eq!(ini.get("reactor", "port", 0u16), Ok(9000));
    assert_eq!(
        ini.get("reactor", "ip", IpAddr::from([0, 0, 0, 0])).unwrap_err().to_string(),
        "environment variable LARS_REACTOR_IP: key `reactor.ip`: `bad` is not an IP address"
    );
    ini.set("reactor", "port", "9100");
    assert_eq!(ini.get("reactor", "port", 0u16), Ok(9100));
    use std::os::unix::ffi::OsStringExt;
    let not_utf8 = [("LARS_REACTOR_PORT".into(), std::ffi::OsString::from_vec(vec![0xff]))];
    assert_eq!(
        ini.apply_env(not_utf8, &ReactorConfig::KEYS).unwrap_err().to_string(),
        "environment variable LARS_REACTOR_PORT: key `reactor.port`: the value is not valid UTF-8"
    );
}

#[test]
fn values_of_every_type() {
    let ini = Ini::parse(
        "[s]\nflag = false\nlist = 127.0.0.1:1, [::1]:2\nrate = 0.7\n[s]\nflag = off\n",
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(ini.get("s", "flag", true), Ok(false), "false overrides a true default; sections merge");
    let list: Vec<SocketAddr> = ini.get("s", "list", Vec::new()).unwrap();
    assert_eq!(list, ["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()]);
    assert_eq!(ini.get("s", "rate", 0.0f64), Ok(0.7));
}

#[test]
fn unknown_keys_and_sections_are_named_with_a_suggestion() {
    let text = "[reactor]\nmaxConns = 10\nport = 1\n[repoter]\ndb_thread_cnt = 3\n\
                [route:1:1]\npolicy = p2c\nweight = 2\n[zzz]\n";
    let ini = Ini::parse(text, Path::new("lars.conf")).unwrap();
    let known =
        [("reactor", "maxConn"), ("reactor", "port"), ("reporter", "db_thread_cnt"), ("route:*", "policy")];
    let warnings: Vec<String> = ini.unknown(&known).iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "lars.conf:2: key `reactor.maxConns`: unknown key (did you mean `maxConn`?): ignored",
            "lars.conf:4: unknown section [repoter] (did you mean [reporter]?): its keys are ignored",
            "lars.conf:8: key `route:1:1.weight`: unknown key: ignored",
            "lars.conf:9: unknown section [zzz]: its keys are ignored",
        ]
    );
    assert_eq!(suggestion("MAXCONN", &["maxConn"]), Some("maxConn"));
    assert_eq!(suggestion("ip", &["port"]), None, "too short to guess");
}

#[test]
fn the_effective_configuration_names_every_origin() {
    let mut ini = Ini::parse("[reactor]\nport = 7000\n", Path::new("dns.conf")).unwrap();
    ini.apply_env([("LARS_REACTOR_IP".into(), "127.0.0.2".into())], &ReactorConfig::KEYS).unwrap();
    ini.set_by_flag("threads", "reactor", "threadNum", "2");
    ReactorConfig::from_ini(&ini, 7778).unwrap();
    let shown: Vec<(String, String, String)> = ini
        .effective()
        .into_iter()
        .map(|e| (format!("{}.{}", e.section, e.key), e.value, e.origin.to_string()))
        .collect();
    let expect = |k: &str, v: &str, o: &str| (k.to_string(), v.to_string(), o.to_string());
    assert_eq!(
        shown,
        [
            expect("reactor.ip", "127.0.0.2", "environment variable LARS_REACTOR_IP"),
            expect("reactor.port", "7000", "dns.conf:2"),
            expect("reactor.maxConn", "1024", "default"),
            expect("reactor.threadNum", "2", "flag --threads"),
            expect("reactor.allow", &lars_core::access::Cidr::LOOPBACK.to_vec().show(), "default"),
            expect("reactor.headerTimeout", "10", "default"),
            expect("reactor.bodyTimeout", "30", "default"),
            expect("reactor.idleTimeout", "0", "default"),
            expect("reactor.spin", "true", "default"),
        ]
    );
    assert_eq!(ini.clone().effective().len(), 9, "a clone keeps what was read");
}
