//! The field tables held against the SDK: when an SDK upgrade adds a field to
//! `UpdateAgentRuntimeInput` or to `GetAgentRuntimeOutput`, a test here fails until the field is
//! carried over (or listed as not applicable, with the reason).
//!
//! The SDK's shapes are `#[non_exhaustive]`, so an exhaustive destructuring cannot be written
//! outside the SDK crate. Their builders' `Debug` output, however, lists every field, set or not
//! (sensitive ones as `*** Sensitive Data Redacted ***`): that is the list read here.

use std::collections::BTreeSet;

use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime::GetAgentRuntimeOutput;
use aws_sdk_bedrockagentcorecontrol::operation::update_agent_runtime::UpdateAgentRuntimeInput;

use super::FIXTURE;
use crate::fields::{CARRIED_OVER, Field, NOT_CARRIED, READ_ONLY};

/// The field names of a struct from its pretty `Debug` output (`Name {\n    field: value,\n`),
/// without the SDK's response metadata (`_request_id`: not an API member).
fn debug_fields(debug: &str) -> BTreeSet<String> {
    debug
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_owned()))
        .filter(|name| !name.starts_with('_'))
        .collect()
}

fn rust_names(tables: &[&[Field]]) -> BTreeSet<String> {
    tables
        .iter()
        .flat_map(|table| table.iter())
        .map(|field| field.rust.to_owned())
        .collect()
}

fn json_names(tables: &[&[Field]]) -> BTreeSet<String> {
    tables
        .iter()
        .flat_map(|table| table.iter())
        .map(|field| field.json.to_owned())
        .collect()
}

#[test]
fn debug_fields_reads_every_field_of_a_builder() {
    let fields = debug_fields(&format!("{:#?}", UpdateAgentRuntimeInput::builder()));
    assert!(fields.contains("agent_runtime_artifact"), "{fields:?}");
    assert!(fields.contains("environment_variables"), "{fields:?}");
    assert!(fields.len() >= 16, "{fields:?}");
}

#[test]
fn every_update_input_field_is_carried_over_or_explained() {
    let sdk = debug_fields(&format!("{:#?}", UpdateAgentRuntimeInput::builder()));
    let ours = rust_names(&[CARRIED_OVER, NOT_CARRIED]);
    let new: Vec<_> = sdk.difference(&ours).collect();
    let gone: Vec<_> = ours.difference(&sdk).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "UpdateAgentRuntimeInput changed with the SDK: new fields {new:?}, removed fields {gone:?}.\n\
         UpdateAgentRuntime is a full replacement: carry a new field over in request.rs, add it to \
         fields::CARRIED_OVER, to the fixture get_agent_runtime.json and to the crate doc's list \
         (or add it to fields::NOT_CARRIED with the reason it must not be copied)."
    );
}

#[test]
fn every_get_output_field_is_carried_over_or_read_only() {
    let sdk = debug_fields(&format!("{:#?}", GetAgentRuntimeOutput::builder()));
    let ours = rust_names(&[CARRIED_OVER, READ_ONLY]);
    let new: Vec<_> = sdk.difference(&ours).collect();
    let gone: Vec<_> = ours.difference(&sdk).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "GetAgentRuntimeOutput changed with the SDK: new fields {new:?}, removed fields {gone:?}.\n\
         A field the update accepts belongs in fields::CARRIED_OVER (and request.rs); a field it \
         does not accept in fields::READ_ONLY. Add it to the fixture get_agent_runtime.json."
    );
}

#[test]
fn the_fixture_sets_every_field() {
    let fixture: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(FIXTURE).unwrap();
    let keys: BTreeSet<String> = fixture.keys().cloned().collect();
    assert_eq!(keys, json_names(&[CARRIED_OVER, READ_ONLY]));
    for (key, value) in &fixture {
        assert!(!value.is_null(), "{key} is null in the fixture");
    }
}

#[test]
fn wire_names_are_the_camel_case_field_names() {
    for field in CARRIED_OVER.iter().chain(NOT_CARRIED).chain(READ_ONLY) {
        let mut camel = String::new();
        let mut upper = false;
        for c in field.rust.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                camel.extend(c.to_uppercase());
                upper = false;
            } else {
                camel.push(c);
            }
        }
        assert_eq!(camel, field.json, "{}", field.why);
    }
}

#[test]
fn the_crate_doc_lists_every_carried_field() {
    let doc: String = include_str!("../lib.rs")
        .lines()
        .take_while(|line| line.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    for field in CARRIED_OVER {
        assert!(
            doc.contains(&format!("//! - `{}`", field.json)),
            "the crate doc does not list `{}`",
            field.json
        );
    }
    for field in NOT_CARRIED.iter().chain(READ_ONLY) {
        assert!(
            doc.contains(&format!("`{}`", field.json)),
            "the crate doc does not mention `{}`",
            field.json
        );
    }
}
