//! placeholder
use super::Context;
use crate::error::Result;
pub fn run(_ctx: &Context, _a: crate::cli::RefreshArgs) -> Result<()> {
    Err(crate::error::Error::Other("not yet".into()))
}
