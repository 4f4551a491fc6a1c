//! The image and extension-handler catalogue routes (publishers, offers, skus, versions, types).

// A family of the parent module: it shares the parent's helpers, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn images(req: &Req, sub: &str, loc: &str, tail: &[&str]) -> Result<Resp> {
    let base = format!("/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{loc}/Publishers");
    let mut publishers: Vec<&str> =
        catalog::IMAGES.iter().map(|i| i.publisher).chain(catalog::HANDLERS.iter().map(|h| h.publisher)).collect();
    publishers.sort_unstable();
    publishers.dedup();
    let top = req.query("$top").and_then(|t| t.parse::<usize>().ok());
    let desc = req.query("$orderby").is_some_and(|o| o.to_ascii_lowercase().contains("desc"));
    let finish = |mut names: Vec<String>, prefix: String| {
        names.sort();
        names.dedup();
        if desc {
            names.reverse();
        }
        if let Some(n) = top {
            names.truncate(n);
        }
        Resp::json(200, catalog::name_list(&prefix, loc, names.into_iter()))
    };
    let unknown = |what: &str| ArmError::new(404, "NotFound", format!("Artifact: {what} was not found."));
    // Fixed words match case-insensitively; names keep the caller's casing.
    let lower: Vec<String> = tail.iter().map(|t| t.to_ascii_lowercase()).collect();
    let shape: Vec<&str> = lower.iter().map(String::as_str).collect();
    let name = |i: usize| tail.get(i).copied().unwrap_or_default();
    let (publisher, offer, sku) = (name(0), name(4), name(6));
    match shape.as_slice() {
        [] => Ok(finish(publishers.iter().map(|p| (*p).to_owned()).collect(), base)),
        [_, "artifacttypes", "vmimage", "offers"] => {
            let names: Vec<String> =
                catalog::IMAGES.iter().filter(|i| eq(i.publisher, publisher)).map(|i| i.offer.to_owned()).collect();
            if names.is_empty() {
                return Err(unknown(&format!("publisher {publisher}")));
            }
            Ok(finish(names, format!("{base}/{publisher}/ArtifactTypes/VMImage/Offers")))
        }
        [_, "artifacttypes", "vmimage", "offers", _, "skus"] => {
            let names: Vec<String> = catalog::IMAGES
                .iter()
                .filter(|i| eq(i.publisher, publisher) && eq(i.offer, offer))
                .map(|i| i.sku.to_owned())
                .collect();
            if names.is_empty() {
                return Err(unknown(&format!("offer {offer}")));
            }
            Ok(finish(names, format!("{base}/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus")))
        }
        [_, "artifacttypes", "vmimage", "offers", _, "skus", _, "versions"] => {
            let image = catalog::image(publisher, offer, sku).ok_or_else(|| unknown(&format!("sku {sku}")))?;
            let prefix = format!("{base}/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/Versions");
            Ok(finish(image.versions.iter().map(|v| (*v).to_owned()).collect(), prefix))
        }
        [_, "artifacttypes", "vmimage", "offers", _, "skus", _, "versions", _] => {
            let version = name(8);
            let image = catalog::image(publisher, offer, sku).ok_or_else(|| unknown(&format!("sku {sku}")))?;
            if !image.versions.contains(&version) {
                return Err(unknown(&format!("version {version}")));
            }
            Ok(Resp::json(
                200,
                json!({"name": version, "location": loc, "id": format!("{base}/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/Versions/{version}"),
                       "properties": {"osDiskImage": {"operatingSystem": image.os.to_string()}, "hyperVGeneration": "V2", "architecture": "x64"}}),
            ))
        }
        [_, "artifacttypes", "vmextension", "types"] => {
            let names: Vec<String> =
                catalog::HANDLERS.iter().filter(|h| eq(h.publisher, publisher)).map(|h| h.kind.to_owned()).collect();
            if names.is_empty() {
                return Err(unknown(&format!("publisher {publisher}")));
            }
            Ok(finish(names, format!("{base}/{publisher}/ArtifactTypes/VMExtension/Types")))
        }
        [_, "artifacttypes", "vmextension", "types", _, "versions"] => {
            let kind = name(4);
            let handler = catalog::handler(publisher, kind).ok_or_else(|| unknown(&format!("type {kind}")))?;
            Ok(finish(
                handler.versions.iter().map(|v| (*v).to_owned()).collect(),
                format!("{base}/{publisher}/ArtifactTypes/VMExtension/Types/{kind}/Versions"),
            ))
        }
        _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    }
}
