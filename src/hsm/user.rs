//! HSM users: the CloudHSM CLI's `user create/delete/change-password/list`, and logging in
//! and out (with the failed-login count that locks a user out).

use super::audit::{audit_all, opcode};
use super::cluster::{active_cluster, cluster};
use super::password::{check_hsm_password, hash_password, password_matches, unavailable};
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::*;
use crate::secret::Password;
use crate::types::*;

fn check_username(u: &str) -> Result<()> {
    let ok =
        (1..=31).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(err!(
            CloudHsmInvalidRequestException,
            "Invalid username '{u}': 1 to 31 letters, digits or underscores"
        ))
    }
}

/// The user `username` of `c`, or CloudHsmResourceNotFoundException.
pub(super) fn user<'s>(
    state: &'s CloudHsmState,
    c: &Cluster,
    username: &str,
) -> Result<&'s HsmUser> {
    state.user(&c.id, username).ok_or_else(|| {
        err!(
            CloudHsmResourceNotFoundException,
            "User {username} does not exist in cluster {}",
            c.id
        )
    })
}

/// `user create`.
pub fn create_user(tx: &mut HsmTx<'_>, req: &UserRequest) -> Result<UserDescription> {
    let c = active_cluster(tx.state, &req.cluster_id)?.clone();
    check_username(&req.username)?;
    check_hsm_password(&req.password)?;
    if tx.state.user(&c.id, &req.username).is_some() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "User {} already exists in cluster {}",
            req.username,
            c.id
        ));
    }
    let max = c.limits().users;
    if tx.state.cluster_users(&c.id).count() >= max {
        return Err(err!(
            CloudHsmServiceException,
            "Cluster {} already has {max} users, the most a cluster of {} HSMs holds",
            c.id,
            c.hsm_type
        ));
    }
    let u = HsmUser {
        username: req.username.clone(),
        role: req.role.unwrap_or(HsmUserRole::CryptoUser),
        password: hash_password(tx, &c, &req.username, &req.password)?,
        failed_logins: 0,
        session: None,
    };
    let d = describe_user(&u);
    audit_all(
        tx,
        &c,
        opcode::CREATE_USER,
        "SUCCESS",
        Some(&req.username),
        None,
    );
    tx.push(HsmChange::PutUser(c.id.clone(), u));
    Ok(d)
}

/// `user delete`. A crypto user that still owns key objects cannot be deleted.
pub fn delete_user(tx: &mut HsmTx<'_>, cluster_id: &str, username: &str) -> Result<()> {
    let c = active_cluster(tx.state, cluster_id)?.clone();
    let u = user(tx.state, &c, username)?;
    if u.session.is_some() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "User {username} is logged in; log out first"
        ));
    }
    if let Some(o) = tx
        .state
        .cluster_objects(&c.id)
        .find(|o| o.owner == username)
    {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "User {username} still owns key {}; delete its keys first",
            o.handle
        ));
    }
    audit_all(tx, &c, opcode::DELETE_USER, "SUCCESS", Some(username), None);
    tx.push(HsmChange::DeleteUser(c.id.clone(), username.to_owned()));
    Ok(())
}

/// `user change-password` (by an admin: also unlocks the user, as on CloudHSM).
pub fn change_password(tx: &mut HsmTx<'_>, req: &UserRequest) -> Result<()> {
    let c = active_cluster(tx.state, &req.cluster_id)?.clone();
    check_hsm_password(&req.password)?;
    let mut u = user(tx.state, &c, &req.username)?.clone();
    u.password = hash_password(tx, &c, &req.username, &req.password)?;
    u.failed_logins = 0;
    audit_all(
        tx,
        &c,
        opcode::CHANGE_PSWD,
        "SUCCESS",
        Some(&req.username),
        None,
    );
    tx.push(HsmChange::PutUser(c.id.clone(), u));
    Ok(())
}

/// `user list`.
pub fn list_users(state: &CloudHsmState, cluster_id: &str) -> Result<Vec<UserDescription>> {
    let c = cluster(state, cluster_id)?;
    Ok(state.cluster_users(&c.id).map(describe_user).collect())
}

fn describe_user(u: &HsmUser) -> UserDescription {
    UserDescription {
        username: u.username.clone(),
        role: u.role,
        locked: u.locked_out(),
        mfa: false,
        logged_in: u.session.as_ref().map(|s| match s {
            SessionHolder::Kms(store) => format!("kms:{store}"),
            SessionHolder::External => "external".to_owned(),
        }),
    }
}

/// How a login attempt ended.
#[derive(Debug)]
pub(super) enum LoginOutcome {
    /// Logged in: the user as it now is (holding the session), as pushed.
    Ok(HsmUser),
    /// No such user (or none of the role the login asked for).
    NoSuchUser,
    /// The user is locked out.
    LockedOut,
    /// Somebody is logged in as the user already.
    AlreadyLoggedIn,
    /// Wrong password (counted towards the lockout).
    WrongPassword,
    /// The password hash could not be unwrapped (not counted): the error.
    Unavailable(crate::KmsError),
}

/// A login as `username` by `holder`: records the attempt (audit, failure count, session).
/// With `role` (the CloudHSM CLI's `login --role`), a user of another role is no such user:
/// KMS logs in as the crypto user `kmsuser`, and an admin of that name is not it (spec §3.2,
/// §2.1 USER_NOT_FOUND). `None`: a user of any role.
pub(super) fn login(
    tx: &mut HsmTx<'_>,
    c: &Cluster,
    username: &str,
    role: Option<HsmUserRole>,
    password: &Password,
    holder: SessionHolder,
) -> LoginOutcome {
    let Some(u) = tx
        .state
        .user(&c.id, username)
        .filter(|u| role.is_none_or(|r| u.role == r))
    else {
        return LoginOutcome::NoSuchUser;
    };
    let mut u = u.clone();
    if u.locked_out() {
        audit_all(
            tx,
            c,
            opcode::LOGIN,
            "RET_USER_LOCKED_OUT",
            Some(username),
            None,
        );
        return LoginOutcome::LockedOut;
    }
    if u.session.is_some() {
        audit_all(
            tx,
            c,
            opcode::LOGIN,
            "RET_USER_ALREADY_LOGGED_IN",
            Some(username),
            None,
        );
        return LoginOutcome::AlreadyLoggedIn;
    }
    let matches = match password_matches(tx, c, username, &u.password, password) {
        Ok(m) => m,
        Err(e) => return LoginOutcome::Unavailable(e),
    };
    if !matches {
        u.failed_logins += 1;
        audit_all(
            tx,
            c,
            opcode::LOGIN,
            "RET_USER_LOGIN_FAILURE",
            Some(username),
            None,
        );
        tx.push(HsmChange::PutUser(c.id.clone(), u));
        return LoginOutcome::WrongPassword;
    }
    u.failed_logins = 0;
    u.session = Some(holder);
    audit_all(tx, c, opcode::LOGIN, "SUCCESS", Some(username), None);
    tx.push(HsmChange::PutUser(c.id.clone(), u.clone()));
    LoginOutcome::Ok(u)
}

/// `login` from the CloudHSM CLI (an external session).
pub fn login_external(
    tx: &mut HsmTx<'_>,
    cluster_id: &str,
    username: &str,
    password: &Password,
) -> Result<()> {
    let c = active_cluster(tx.state, cluster_id)?.clone();
    cli_login(tx, &c, username, password).map(drop)
}

/// A CloudHSM CLI login to `c` (an external session), under every rule of [`login`]: a
/// locked-out user, or one somebody (KMS included) is logged in as already, is refused, and a
/// wrong password counts towards the lockout. Returns the logged-in user, for
/// [`cli_logout`]. The caller commits even when this fails, so the attempt is kept.
pub(super) fn cli_login(
    tx: &mut HsmTx<'_>,
    c: &Cluster,
    username: &str,
    password: &Password,
) -> Result<HsmUser> {
    match login(tx, c, username, None, password, SessionHolder::External) {
        LoginOutcome::Ok(u) => Ok(u),
        LoginOutcome::NoSuchUser => Err(err!(
            CloudHsmResourceNotFoundException,
            "User {username} does not exist in cluster {}",
            c.id
        )),
        LoginOutcome::LockedOut => Err(err!(
            CloudHsmAccessDeniedException,
            "User {username} is locked out"
        )),
        LoginOutcome::AlreadyLoggedIn => Err(err!(
            CloudHsmAccessDeniedException,
            "User {username} is already logged in"
        )),
        LoginOutcome::WrongPassword => Err(err!(
            CloudHsmAccessDeniedException,
            "Login failed for user {username}: wrong password"
        )),
        LoginOutcome::Unavailable(e) => Err(unavailable(username, &e)),
    }
}

/// `logout` of an external session.
pub fn logout_external(tx: &mut HsmTx<'_>, cluster_id: &str, username: &str) -> Result<()> {
    let c = cluster(tx.state, cluster_id)?.clone();
    let u = user(tx.state, &c, username)?.clone();
    if u.session != Some(SessionHolder::External) {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "User {username} has no CLI session to log out"
        ));
    }
    cli_logout(tx, &c, u);
    Ok(())
}

/// Ends the CLI session of `u` (as [`cli_login`] returned it, or as the state holds it).
pub(super) fn cli_logout(tx: &mut HsmTx<'_>, c: &Cluster, mut u: HsmUser) {
    u.session = None;
    audit_all(tx, c, opcode::LOGOUT, "SUCCESS", Some(&u.username), None);
    tx.push(HsmChange::PutUser(c.id.clone(), u));
}
