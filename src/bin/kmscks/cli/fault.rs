//! `kmscks cloudhsm fault <kind> --cluster-id ID …`: one verb per fault a person may want to
//! rehearse, and the way back from it, each sending the InjectFault operation with its
//! [`Fault`]. [`KINDS`] is the one table of them (verb, one-line doc, flags, the `Fault` it
//! sends); the clap leaves and `kmscks cloudhsm fault --help` are derived from it.
//! `fault list --cluster-id ID` (the ListFaults operation) is an ordinary verb of the table
//! in `cloudhsm.rs`; it prints each fault in force as the `Fault` that injects it. The raw
//! `inject-fault --fault JSON` verb stays for faults given as JSON.

use clap::{ArgMatches, Command};

use super::args::{self, opt, req, ArgSpec, Kind::*};
use super::{spec_args, CliError};
use kmscks::api::hsm::{Fault, InjectFaultRequest};
use kmscks::ops::Request;
use kmscks::types::HsmId;

/// The flag every fault verb takes.
pub(crate) const CLUSTER_ID: ArgSpec = req("cluster-id", Str, "The cluster's id");
const HSM_ID: ArgSpec = req("hsm-id", Str, "The HSM's id");
const ZONE: ArgSpec = req("availability-zone", Str, "One of the cluster's zones");
const USERNAME: ArgSpec = opt("username", Str, "The HSM user (default: kmsuser)");
const DURATION_MS: ArgSpec = opt(
    "duration-ms",
    Int,
    "Heal by itself after this many milliseconds (default: until network-heal)",
);
const LATENCY_MS: ArgSpec = req(
    "latency-ms",
    Int,
    "Milliseconds added to each operation the HSM serves (0 clears it)",
);
const KEY_HANDLE: ArgSpec = req(
    "key-handle",
    Int,
    "The key object's handle (key-reference in `key list`)",
);

/// The user the user faults hit when `--username` is absent: the one KMS logs in as.
const DEFAULT_USERNAME: &str = "kmsuser";

/// A fault verb: its name under `kmscks cloudhsm fault`, its one-line doc, its flags besides
/// `--cluster-id`, and the fault it sends given the parsed flags.
pub(crate) struct FaultKind {
    /// The verb, e.g. `hsm-down`.
    pub name: &'static str,
    /// What it does (the verb's help line).
    pub about: &'static str,
    /// Its flags besides [`CLUSTER_ID`].
    pub flags: &'static [ArgSpec],
    /// The fault it injects.
    pub fault: fn(&Flags<'_>) -> Result<Fault, CliError>,
}

/// Every fault verb.
pub(crate) const KINDS: &[FaultKind] = &[
    FaultKind {
        name: "hsm-down",
        about: "The HSM fails (DEGRADED): it serves nothing until hsm-up",
        flags: &[HSM_ID],
        fault: |f| Ok(Fault::HsmLost(f.hsm_id()?)),
    },
    FaultKind {
        name: "hsm-up",
        about: "A DEGRADED HSM comes back: ACTIVE again, its reboot counter up by one",
        flags: &[HSM_ID],
        fault: |f| Ok(Fault::HsmRestored(f.hsm_id()?)),
    },
    FaultKind {
        name: "az-down",
        about: "Every HSM of the Availability Zone fails (DEGRADED) until az-up",
        flags: &[ZONE],
        fault: |f| {
            Ok(Fault::AvailabilityZoneDown {
                availability_zone: f.text(&ZONE)?,
            })
        },
    },
    FaultKind {
        name: "az-up",
        about: "The HSMs az-down took down in the zone come back",
        flags: &[ZONE],
        fault: |f| {
            Ok(Fault::AvailabilityZoneUp {
                availability_zone: f.text(&ZONE)?,
            })
        },
    },
    FaultKind {
        name: "network-cut",
        about: "The network between KMS and the cluster goes down until network-heal, or for --duration-ms",
        flags: &[DURATION_MS],
        fault: |f| match f.optional_int(&DURATION_MS)? {
            None => Ok(Fault::NetworkDown),
            Some(duration_ms) => Ok(Fault::NetworkDownFor { duration_ms }),
        },
    },
    FaultKind {
        name: "network-heal",
        about: "The network between KMS and the cluster comes back",
        flags: &[],
        fault: |_| Ok(Fault::NetworkRestored),
    },
    FaultKind {
        name: "slow-hsm",
        about: "The HSM answers slowly: each cryptographic operation it serves takes --latency-ms longer",
        flags: &[HSM_ID, LATENCY_MS],
        fault: |f| {
            Ok(Fault::SlowHsm {
                hsm_id: f.hsm_id()?,
                latency_ms: u32::try_from(f.int(&LATENCY_MS)?).map_err(|_| {
                    CliError::Validation(format!("--{} is too large", LATENCY_MS.flag))
                })?,
            })
        },
    },
    FaultKind {
        name: "internal-error-on",
        about: "Every call KMS makes into the cluster fails internally until internal-error-off",
        flags: &[],
        fault: |_| Ok(Fault::InternalError(true)),
    },
    FaultKind {
        name: "internal-error-off",
        about: "Calls into the cluster stop failing internally",
        flags: &[],
        fault: |_| Ok(Fault::InternalError(false)),
    },
    FaultKind {
        name: "password-changed",
        about: "The user's password is changed behind KMS's back (to one nobody knows)",
        flags: &[USERNAME],
        fault: |f| {
            Ok(Fault::PasswordChanged {
                username: f.username()?,
            })
        },
    },
    FaultKind {
        name: "user-locked-out",
        about: "The user is locked out, as after five failed logins (user change-password unlocks)",
        flags: &[USERNAME],
        fault: |f| {
            Ok(Fault::UserLockedOut {
                username: f.username()?,
            })
        },
    },
    FaultKind {
        name: "user-logged-in-elsewhere",
        about: "Somebody logs in as the user with CloudHSM CLI (logout ends it)",
        flags: &[USERNAME],
        fault: |f| {
            Ok(Fault::UserLoggedInElsewhere {
                username: f.username()?,
            })
        },
    },
    FaultKind {
        name: "subnet-deleted",
        about: "The cluster's subnet in the zone is deleted",
        flags: &[ZONE],
        fault: |f| {
            Ok(Fault::SubnetDeleted {
                availability_zone: f.text(&ZONE)?,
            })
        },
    },
    FaultKind {
        name: "subnet-full",
        about: "The cluster's subnet in the zone has no free IP address left",
        flags: &[ZONE],
        fault: |f| {
            Ok(Fault::SubnetFull {
                availability_zone: f.text(&ZONE)?,
            })
        },
    },
    FaultKind {
        name: "security-group-broken",
        about: "The cluster security group loses its rule for TCP 2223-2225 to and from itself",
        flags: &[],
        fault: |_| Ok(Fault::SecurityGroupBroken),
    },
    FaultKind {
        name: "security-group-fixed",
        about: "The cluster security group's rule is put back",
        flags: &[],
        fault: |_| Ok(Fault::SecurityGroupFixed),
    },
    FaultKind {
        name: "delete-key-object",
        about: "A key object is deleted from the cluster (as its owner could, with deleteKey)",
        flags: &[KEY_HANDLE],
        fault: |f| {
            Ok(Fault::KeyObjectDeleted {
                handle: f.int(&KEY_HANDLE)?,
            })
        },
    },
];

/// The parsed flags of one fault verb.
pub(crate) struct Flags<'m>(&'m ArgMatches);

impl Flags<'_> {
    fn text(&self, spec: &ArgSpec) -> Result<String, CliError> {
        let value = self.0.get_one::<String>(spec.flag).ok_or_else(|| {
            CliError::Validation(format!("Missing required parameter: --{}", spec.flag))
        })?;
        Ok(args::plain_text(spec.flag, value)?)
    }

    fn int(&self, spec: &ArgSpec) -> Result<u64, CliError> {
        let value = args::int(spec.flag, &self.text(spec)?)?;
        value
            .as_u64()
            .ok_or_else(|| CliError::Validation(format!("--{} must not be negative", spec.flag)))
    }

    fn optional_int(&self, spec: &ArgSpec) -> Result<Option<u64>, CliError> {
        match self.0.get_one::<String>(spec.flag) {
            Some(_) => self.int(spec).map(Some),
            None => Ok(None),
        }
    }

    fn hsm_id(&self) -> Result<HsmId, CliError> {
        let text = self.text(&HSM_ID)?;
        HsmId::parse(&text).ok_or_else(|| {
            CliError::Validation(format!(
                "--{} {text} is not an HSM id (hsm- and 11 characters)",
                HSM_ID.flag
            ))
        })
    }

    fn username(&self) -> Result<String, CliError> {
        match self.0.get_one::<String>(USERNAME.flag) {
            Some(u) => Ok(args::plain_text(USERNAME.flag, u)?),
            None => Ok(DEFAULT_USERNAME.to_owned()),
        }
    }
}

/// The `fault` group of `kmscks cloudhsm`, with one leaf per [`KINDS`] entry (`fault list`
/// is added beside them from the verb table).
pub(crate) fn group() -> Command {
    let mut group = Command::new("fault")
        .about("Rehearse failures: inject a fault into a cluster, take it back, list them")
        .subcommand_required(true);
    for k in KINDS {
        group = group.subcommand(
            Command::new(k.name)
                .about(k.about)
                .args(spec_args(&[CLUSTER_ID]))
                .args(spec_args(k.flags)),
        );
    }
    group
}

/// The fault kind of a command path (`["cloudhsm", "fault", name]`), if it is one.
pub(crate) fn kind(path: &[&str]) -> Option<&'static FaultKind> {
    match path {
        ["cloudhsm", "fault", name] => KINDS.iter().find(|k| k.name == *name),
        _ => None,
    }
}

/// The InjectFault request of a fault verb.
pub(crate) fn request(kind: &FaultKind, m: &ArgMatches) -> Result<Request, CliError> {
    let flags = Flags(m);
    Ok(Request::InjectFault(InjectFaultRequest {
        cluster_id: flags.text(&CLUSTER_ID)?,
        fault: (kind.fault)(&flags)?,
    }))
}
