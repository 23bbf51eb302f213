//! `publish`: resolves the command line into a [`PublishRequest`] and prints one
//! summary line (or JSON with `--json`).

use super::Context;
use crate::cli::PublishArgs;
use crate::error::{Error, Result};
use crate::expiry::{ExpiryChoice, Period};
use crate::metadata::TargetFormat;
use crate::publish::{publish, ImageSource, PublishRequest, Published};

pub fn run(ctx: &Context, a: PublishArgs) -> Result<()> {
    let format = TargetFormat::parse(&a.format)?;
    let image = match (&a.image, &a.sha256, a.length) {
        (Some(path), None, None) => ImageSource::File(path.clone()),
        (None, Some(sha), Some(length)) => ImageSource::Given {
            sha256: sha.clone(),
            length,
        },
        // OSTree targets are the commit hash with length 0, as meta-updater pushes them.
        (None, Some(sha), None) if format == TargetFormat::Ostree => ImageSource::Given {
            sha256: sha.clone(),
            length: 0,
        },
        _ => return Err(Error::Usage(
            "give --image FILE, or --sha256 with --length (for --format ostree, --sha256 alone)"
                .into(),
        )),
    };
    let custom = super::parse_json_object(a.custom.as_deref(), "--custom")?;
    let expiry = match ExpiryChoice::from_flags(a.expires.as_deref(), a.expire_after.as_deref())? {
        ExpiryChoice::Default => ExpiryChoice::After(Period {
            years: 0,
            months: 1,
            days: 0,
        }),
        other => other,
    };
    let req = PublishRequest {
        credentials: a.credentials,
        name: a.name,
        version: a.version,
        hardware_ids: a
            .hardware_ids
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect(),
        image,
        format,
        url: a.url,
        custom,
        expiry,
        upload: a.upload,
        retries: a.retries,
        dry_run: a.dry_run,
        output: a.output,
        keep_versions: a.keep_versions,
        skip_unless_offline: a.skip_unless_offline,
        options: ctx.client_options(),
    };
    let outcome = publish(&req)?;
    if let Published::Done(done) = &outcome {
        for removed in &done.removed {
            log::info!("removed old version {removed}");
        }
    }
    if a.json {
        let text = serde_json::to_string(&outcome).map_err(|e| Error::Other(e.to_string()))?;
        println!("{text}");
    } else {
        println!("{}", outcome.summary());
    }
    Ok(())
}
