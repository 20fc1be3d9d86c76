//! Who may use the console: users with roles and argon2id password hashes, signed session
//! cookies, CSRF tokens, and the failed-login limits.
//!
//! Everything lives in the state directory: `users` (one `name role hash` line per user,
//! written by `lars-web user add`) and `secret` (32 random bytes made on first run, mode 0600),
//! the HMAC-SHA256 key that signs sessions and CSRF tokens. There is no default user, password
//! or key. A session cookie is `user:expiry:nonce:mac`; its CSRF token is the HMAC of its nonce,
//! so a token is good for one session only and a forged form (no token, or another session's)
//! is refused.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use hmac::{Hmac, KeyInit, Mac};
use lars_std::time::Clock;
use sha2::Sha256;

/// How long a session lasts.
pub const SESSION_SECS: u64 = 8 * 3600;
/// Failed logins allowed per user in [`LOCK_WINDOW_SECS`] before that user is locked out.
pub const USER_FAILURES: u32 = 5;
/// Failed logins allowed per address in [`LOCK_WINDOW_SECS`].
pub const ADDRESS_FAILURES: u32 = 20;
/// The window of the failed-login counts, and the lockout.
pub const LOCK_WINDOW_SECS: u64 = 15 * 60;
/// The most users and addresses the limiter remembers (oldest forgotten first).
const LIMITER_CAPACITY: usize = 10_000;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Changes routes and descriptions.
    Admin,
    /// Only looks.
    Viewer,
}

impl Role {
    /// Parses `admin` or `viewer`.
    pub fn parse(word: &str) -> Option<Role> {
        match word {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// A problem with the state directory or a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError(pub String);

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuthError {}

/// A user name: letters, digits, `_`, `-` and `.`, at most 64 (it sits in cookies and lines).
pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn users_path(state: &Path) -> PathBuf {
    state.join("users")
}

/// Adds or replaces user `name` in `state`'s users file, with an argon2id hash of `password`.
pub fn add_user(state: &Path, name: &str, role: Role, password: &str) -> Result<(), AuthError> {
    if !valid_user_name(name) {
        return Err(AuthError(format!("user name `{name}`: use 1 to 64 letters, digits, _, - and .")));
    }
    if password.chars().count() < 10 {
        return Err(AuthError("the password must have at least 10 characters".into()));
    }
    std::fs::create_dir_all(state).map_err(|e| AuthError(format!("{}: {e}", state.display())))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| AuthError(format!("hashing the password: {e}")))?
        .to_string();
    let path = users_path(state);
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut text: String = old
        .lines()
        .filter(|line| line.split_whitespace().next() != Some(name))
        .map(|line| format!("{line}\n"))
        .collect();
    text.push_str(&format!("{name} {} {hash}\n", role.name()));
    write_private(&path, text.as_bytes())
}

/// Writes `bytes` to `path` atomically, readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    written.map_err(|e| AuthError(format!("{}: {e}", path.display())))
}

/// A user as read from the users file.
#[derive(Debug, Clone)]
struct User {
    role: Role,
    hash: String,
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user's name.
    pub user: String,
    /// The user's role, as the users file says now.
    pub role: Role,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// Users, the signing key and the failed-login counts.
pub struct Auth {
    state: PathBuf,
    key: [u8; 32],
    limiter: Mutex<Limiter>,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password (deliberately not told apart).
    Wrong,
    /// Too many failures for this user or address; try again in this many seconds.
    Locked(u64),
    /// The users file could not be read.
    Broken(String),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

impl Auth {
    /// Opens the state directory, making it and the signing key on first run.
    pub fn open(state: &Path) -> Result<Auth, AuthError> {
        std::fs::create_dir_all(state).map_err(|e| AuthError(format!("{}: {e}", state.display())))?;
        let path = state.join("secret");
        let key = match std::fs::read(&path) {
            Ok(bytes) => bytes.try_into().map_err(|_| {
                AuthError(format!("{}: not a 32-byte key; delete it to make a new one", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| AuthError(format!("no randomness for the key: {e}")))?;
                write_private(&path, &key)?;
                key
            }
            Err(e) => return Err(AuthError(format!("{}: {e}", path.display()))),
        };
        Ok(Auth { state: state.to_path_buf(), key, limiter: Mutex::new(Limiter::default()) })
    }

    fn users(&self) -> Result<HashMap<String, User>, String> {
        let path = users_path(&self.state);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bad = || format!("{}:{}: expected `name admin|viewer hash`", path.display(), index + 1);
            let [name, role, hash] = fields[..] else {
                if fields.is_empty() {
                    continue;
                }
                return Err(bad());
            };
            let role = Role::parse(role).ok_or_else(bad)?;
            users.insert(name.to_string(), User { role, hash: hash.to_string() });
        }
        Ok(users)
    }

    /// Whether any user exists (the login page says how to make one otherwise).
    pub fn has_users(&self) -> bool {
        self.users().is_ok_and(|users| !users.is_empty())
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        hex(&mac.finalize().into_bytes())
    }

    fn verify(&self, parts: &[&str], tag: &str) -> bool {
        let Some(tag) = unhex(tag) else { return false };
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.verify_slice(&tag).is_ok()
    }

    /// Checks a login from `address`; on success returns the session cookie's value.
    pub fn login(&self, user: &str, password: &str, address: &str) -> Result<String, LoginError> {
        let now = Clock::unix_secs();
        let user_key = format!("user:{user}");
        let address_key = format!("address:{address}");
        {
            let limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
            let wait = limiter.locked(&user_key, USER_FAILURES, now).max(limiter.locked(
                &address_key,
                ADDRESS_FAILURES,
                now,
            ));
            if wait > 0 {
                return Err(LoginError::Locked(wait));
            }
        }
        let users = self.users().map_err(LoginError::Broken)?;
        // An unknown user costs a hash check too, so the time taken does not say which
        // names exist.
        let hash = users.get(user).map_or_else(|| unknown_user_hash().as_str(), |found| found.hash.as_str());
        let verified = PasswordHash::new(hash)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok());
        let good = verified && users.contains_key(user);
        if !good {
            let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
            limiter.fail(&user_key, now);
            limiter.fail(&address_key, now);
            return Err(LoginError::Wrong);
        }
        self.limiter.lock().unwrap_or_else(|e| e.into_inner()).forget(&user_key);
        Ok(self.new_session(user, now))
    }

    fn new_session(&self, user: &str, now: u64) -> String {
        let mut nonce = [0u8; 16];
        // Without randomness the nonce is only the time: still signed, still expiring.
        let _ = getrandom::fill(&mut nonce);
        let (expiry, nonce) = ((now + SESSION_SECS).to_string(), hex(&nonce));
        let tag = self.mac(&["session", user, &expiry, &nonce]);
        format!("{user}:{expiry}:{nonce}:{tag}")
    }

    /// The session a cookie value stands for, if it is signed by this console, unexpired,
    /// and its user still exists.
    pub fn session(&self, cookie: &str) -> Option<Session> {
        let [user, expiry, nonce, tag] = cookie.split(':').collect::<Vec<_>>()[..] else { return None };
        if !self.verify(&["session", user, expiry, nonce], tag) {
            return None;
        }
        if expiry.parse::<u64>().ok()? <= Clock::unix_secs() {
            return None;
        }
        let role = self.users().ok()?.get(user)?.role;
        Some(Session { user: user.to_string(), role, csrf: self.mac(&["csrf", nonce]) })
    }

    /// A token for the login form, tied to `nonce` (a cookie set with the form).
    pub fn login_token(&self, nonce: &str) -> String {
        self.mac(&["login", nonce])
    }

    /// Whether `token` is the login form's token for `nonce`.
    pub fn check_login_token(&self, nonce: &str, token: &str) -> bool {
        !nonce.is_empty() && self.verify(&["login", nonce], token)
    }

    /// A new random nonce for the login form.
    pub fn nonce() -> String {
        let mut nonce = [0u8; 16];
        let _ = getrandom::fill(&mut nonce);
        hex(&nonce)
    }
}

/// A hash of a random password, checked against when the user does not exist.
fn unknown_user_hash() -> &'static String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let password = Auth::nonce();
        Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).unwrap_or_default()
    })
}

/// Whether `given` equals `expected`, in time that does not depend on where they differ.
pub fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given.bytes().zip(expected.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

/// Failed logins per user and per address within a window.
#[derive(Default)]
struct Limiter {
    /// Key → (failures, first failure of the window).
    failures: HashMap<String, (u32, u64)>,
}

impl Limiter {
    /// Seconds until `key` may try again (0: now).
    fn locked(&self, key: &str, limit: u32, now: u64) -> u64 {
        match self.failures.get(key) {
            Some(&(count, since)) if count >= limit && now < since + LOCK_WINDOW_SECS => {
                since + LOCK_WINDOW_SECS - now
            }
            _ => 0,
        }
    }

    fn fail(&mut self, key: &str, now: u64) {
        if self.failures.len() >= LIMITER_CAPACITY && !self.failures.contains_key(key) {
            self.failures.retain(|_, &mut (_, since)| now < since + LOCK_WINDOW_SECS);
            if self.failures.len() >= LIMITER_CAPACITY {
                let oldest =
                    self.failures.iter().min_by_key(|(_, (_, since))| *since).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.failures.remove(&oldest);
                }
            }
        }
        let entry = self.failures.entry(key.to_string()).or_insert((0, now));
        if now >= entry.1 + LOCK_WINDOW_SECS {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lars-web-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn sessions_are_signed_and_tied_to_their_user() {
        let dir = state("sessions");
        add_user(&dir, "ann", Role::Admin, "correct horse battery").unwrap();
        let auth = Auth::open(&dir).unwrap();
        assert_eq!(auth.login("ann", "wrong password!", "127.0.0.1"), Err(LoginError::Wrong));
        assert_eq!(auth.login("bob", "correct horse battery", "127.0.0.1"), Err(LoginError::Wrong));
        let cookie = auth.login("ann", "correct horse battery", "127.0.0.1").unwrap();
        let session = auth.session(&cookie).unwrap();
        assert_eq!((session.user.as_str(), session.role), ("ann", Role::Admin));
        // Another user's name, a changed expiry or a bad tag: refused.
        let forged = cookie.replacen("ann", "bob", 1);
        assert!(auth.session(&forged).is_none());
        let parts: Vec<&str> = cookie.split(':').collect();
        assert!(auth.session(&format!("ann:99999999999:{}:{}", parts[2], parts[3])).is_none());
        assert!(auth.session("ann:1:2:3").is_none());
        // The key is kept: a console restarted on the same state accepts the session.
        assert_eq!(Auth::open(&dir).unwrap().session(&cookie), Some(session.clone()));
        // A new key (a new state) does not.
        let other = state("sessions-other");
        add_user(&other, "ann", Role::Admin, "correct horse battery").unwrap();
        assert!(Auth::open(&other).unwrap().session(&cookie).is_none());
        let second = auth.login("ann", "correct horse battery", "127.0.0.1").unwrap();
        assert_ne!(auth.session(&second).unwrap().csrf, session.csrf, "one CSRF token per session");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
    }

    #[test]
    fn failed_logins_lock_the_user_and_the_address() {
        let dir = state("limits");
        add_user(&dir, "ann", Role::Viewer, "correct horse battery").unwrap();
        let auth = Auth::open(&dir).unwrap();
        for _ in 0..USER_FAILURES {
            assert_eq!(auth.login("ann", "guess guess guess", "10.0.0.1"), Err(LoginError::Wrong));
        }
        // Even the right password waits now, from any address.
        assert!(
            matches!(auth.login("ann", "correct horse battery", "10.0.0.2"), Err(LoginError::Locked(s)) if s > 0)
        );
        // One address guessing many users is stopped too.
        for i in 0..ADDRESS_FAILURES {
            let _ = auth.login(&format!("user{i}"), "guess guess guess", "10.0.0.9");
        }
        assert!(matches!(auth.login("nobody", "x", "10.0.0.9"), Err(LoginError::Locked(_))));
        assert_eq!(auth.login("nobody", "x", "10.0.0.3"), Err(LoginError::Wrong));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_users_and_passwords_are_refused() {
        let dir = state("refused");
        assert!(add_user(&dir, "a b", Role::Admin, "long enough pw").is_err());
        assert!(add_user(&dir, "ann", Role::Admin, "short").is_err());
        assert!(!Auth::open(&dir).unwrap().has_users());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
