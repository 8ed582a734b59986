//! The software maintenance package of an installation.

use crate::Date;
use serde::Serialize;

/// Only releases published on or before `maintenance_until` may be
/// installed in `installation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Licence {
    pub installation: String,
    pub maintenance_until: Date,
}
