use proptest::prelude::*;

use super::*;

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(text: &str) -> Analysis {
    analyze(text, &BTreeMap::new()).unwrap()
}

fn sources(analysis: &Analysis) -> Vec<(&str, &str, usize)> {
    analysis
        .sources
        .iter()
        .map(|s| (s.pattern.as_str(), s.instruction, s.line))
        .collect()
}

fn froms(analysis: &Analysis) -> Vec<(&str, Option<&str>, usize)> {
    analysis
        .froms
        .iter()
        .map(|f| (f.reference.as_str(), f.stage.as_deref(), f.line))
        .collect()
}

#[test]
fn images_are_froms_and_from_images_not_stages_nor_scratch() {
    let analysis = ok("\
FROM golang:1.22 AS Build
RUN go build
FROM build AS test
FROM scratch AS empty
FROM --platform=linux/arm64 alpine:3.20
COPY --from=build /out /bin/app
COPY --from=BUILD /out /bin/app2
COPY --from=0 /out /bin/app3
COPY --from=nginx:1.27 /etc/nginx /etc/nginx
RUN --mount=type=cache,from=ghcr.io/acme/cache:1,target=/c make
RUN --mount=type=bind,from=test,target=/t make
FROM ghcr.io/acme/base@sha256:0123 AS final
");
    assert_eq!(
        froms(&analysis),
        [
            ("golang:1.22", Some("Build"), 1),
            ("alpine:3.20", None, 5),
            ("nginx:1.27", None, 9),
            ("ghcr.io/acme/cache:1", None, 10),
            ("ghcr.io/acme/base@sha256:0123", Some("final"), 12),
        ]
    );
    assert!(analysis.sources.is_empty(), "--from copies read no context");
    assert!(analysis.unhashed.is_empty(), "{:?}", analysis.unhashed);
    assert!(!analysis.froms[0].is_pinned());
    assert!(analysis.froms[4].is_pinned());
    // A stage named like the image it starts from is still that image.
    assert_eq!(
        froms(&ok("FROM node AS node\nCOPY . /app\n")),
        [("node", Some("node"), 1)]
    );
}

#[test]
fn copy_sources_with_flags_forms_and_lines() {
    let text = "\
# syntax=docker/dockerfile:1
FROM python:3.12

COPY --chown=app:app --chmod=755 --link pyproject.toml uv.lock /app/
COPY [\"src dir/a b.py\", \"/app/\"]
ADD vendor.tar.gz /opt/
COPY --parents \\
    libs/one \\
    # a comment inside the instruction
    libs/two \\
    /app/
COPY <<EOF /app/config
not a file
EOF
COPY ./*.txt /docs/
";
    let analysis = ok(text);
    assert_eq!(
        sources(&analysis),
        [
            ("pyproject.toml", "COPY", 4),
            ("uv.lock", "COPY", 4),
            ("src dir/a b.py", "COPY", 5),
            ("vendor.tar.gz", "ADD", 6),
            ("libs/one", "COPY", 7),
            ("libs/two", "COPY", 7),
            ("./*.txt", "COPY", 15),
        ]
    );
    assert_eq!(
        analysis.sources[0].text,
        "COPY --chown=app:app --chmod=755 --link pyproject.toml uv.lock /app/"
    );
    assert_eq!(
        analysis.sources[4].text,
        "COPY --parents libs/one libs/two /app/"
    );
}

#[test]
fn urls_and_bind_mounts_are_unhashed() {
    let analysis = ok("\
FROM alpine AS base
ADD https://example.com/tool.tgz /opt/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/pinned.tgz /opt/
ADD git@github.com:acme/lib.git /lib
ADD https://github.com/acme/lib.git#v1 /lib2
RUN --mount=type=bind,source=.,target=/src make
RUN --mount=target=/src make
RUN --mount=type=bind,from=base,target=/b make
RUN --mount=type=cache,target=/root/.cache make
RUN --mount=type=secret,id=token make
ADD local.txt /
");
    let lines: Vec<usize> = analysis.unhashed.iter().map(|u| u.line).collect();
    assert_eq!(lines, [2, 4, 5, 6, 7]);
    assert!(
        analysis.unhashed[0]
            .what
            .contains("https://example.com/tool.tgz")
    );
    assert!(analysis.unhashed[0].what.contains("--checksum"));
    assert!(analysis.unhashed[1].what.contains("git repository"));
    assert!(analysis.unhashed[3].what.contains("bind mount"));
    assert!(
        analysis.unhashed[3]
            .what
            .starts_with("`RUN --mount=type=bind,source=.,target=/src make`: ")
    );
    assert_eq!(sources(&analysis), [("local.txt", "ADD", 11)]);
}

#[test]
fn variables_follow_buildkit_scoping() {
    let text = "\
ARG BASE=python:3.12
ARG APP=default-app
ARG UNSET
FROM $BASE AS build
ARG APP
ARG LOCAL=local
ENV ENVDIR=\"from env\"
COPY ${APP}/src $LOCAL \"$ENVDIR\" ${NOPE:-fallback} ${APP:+alt} '$LITERAL' /dst/
FROM build
COPY $ENVDIR /inherited/
";
    let analysis = analyze(text, &BTreeMap::new()).unwrap();
    assert_eq!(froms(&analysis), [("python:3.12", Some("build"), 4)]);
    let patterns: Vec<&str> = analysis
        .sources
        .iter()
        .map(|s| s.pattern.as_str())
        .collect();
    assert_eq!(
        patterns,
        [
            "default-app/src", // a bare ARG in a stage takes the global default
            "local",
            "from env", // quotes keep the space
            "fallback",
            "alt",
            "$LITERAL",
            "from env", // ENV inherited from the parent stage
        ]
    );

    // Build args win over defaults, in FROM and in stages.
    let with_args = analyze(
        text,
        &args(&[("BASE", "python:3.13"), ("APP", "svc"), ("LOCAL", "l2")]),
    )
    .unwrap();
    assert_eq!(with_args.froms[0].reference, "python:3.13");
    assert_eq!(with_args.sources[0].pattern, "svc/src");
    assert_eq!(with_args.sources[1].pattern, "l2");
}

#[test]
fn a_variable_without_a_value_is_an_error_naming_the_line() {
    // Declared globally but not in the stage: Docker substitutes nothing.
    let text = "ARG DIR=app\nFROM alpine\nCOPY $DIR /app\n";
    let error = analyze(text, &BTreeMap::new()).unwrap_err();
    assert_eq!(
        error,
        Error::UnresolvedSource {
            line: 3,
            instruction: "COPY $DIR /app".to_owned(),
            variable: "DIR".to_owned()
        }
    );
    assert_eq!(
        error.to_string(),
        "line 3: `COPY $DIR /app`: cannot tell what it copies: `$DIR` has no value here (give \
         the ARG a default or a build arg, or list `inputs` explicitly)"
    );
    // A build arg for an undeclared ARG is not seen either.
    assert!(analyze(text, &args(&[("DIR", "x")])).is_err());
    // Declared without a default: the build arg gives it a value.
    let declared = "FROM alpine\nARG DIR\nCOPY ${DIR}/x /app\n";
    assert!(analyze(declared, &BTreeMap::new()).is_err());
    assert_eq!(
        analyze(declared, &args(&[("DIR", "svc")])).unwrap().sources[0].pattern,
        "svc/x"
    );
    // Leniently (explicit inputs): a notice instead.
    let lenient = analyze_with(text, &BTreeMap::new(), true).unwrap();
    assert!(lenient.sources.is_empty());
    assert_eq!(lenient.unhashed.len(), 1);
    assert!(lenient.unhashed[0].what.contains("`$DIR` has no value"));
    // An image is needed in any mode.
    let from = "FROM $IMAGE\n";
    for lenient in [false, true] {
        let error = analyze_with(from, &BTreeMap::new(), lenient).unwrap_err();
        assert!(
            matches!(&error, Error::UnresolvedImage { line: 1, variable, .. } if variable == "IMAGE"),
            "{error}"
        );
    }
    let error = analyze("FROM a\nCOPY --from=$X /a /b\n", &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(error, Error::UnresolvedImage { line: 2, .. }),
        "{error}"
    );
    // Unsupported operators and unclosed braces are unresolved too.
    assert!(analyze("FROM a\nARG X=1\nCOPY ${X%1} /\n", &BTreeMap::new()).is_err());
    assert!(analyze("FROM a\nCOPY ${X /\n", &BTreeMap::new()).is_err());
}

#[test]
fn automatic_platform_args_come_from_build_args() {
    let text = "FROM --platform=$BUILDPLATFORM golang:${GO:-1.22}\nARG TARGETARCH\nCOPY bin/$TARGETARCH/app /app\n";
    let analysis = analyze(text, &args(&[("TARGETARCH", "arm64")])).unwrap();
    assert_eq!(analysis.froms[0].reference, "golang:1.22");
    assert_eq!(analysis.sources[0].pattern, "bin/arm64/app");
    // Usable in FROM without an ARG, like BuildKit.
    let from = analyze("FROM img-$TARGETARCH\n", &args(&[("TARGETARCH", "amd64")])).unwrap();
    assert_eq!(from.froms[0].reference, "img-amd64");
}

#[test]
fn syntax_errors_bom_and_escape_directive() {
    let error = analyze("FROM alpine\nCOPY onlyone\n", &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&error, Error::Syntax { line: 2, message } if message.contains("COPY")),
        "{error}"
    );
    assert!(error.to_string().starts_with("line 2: "), "{error}");
    let error = analyze("", &BTreeMap::new()).unwrap_err();
    assert_eq!(error.to_string(), "expected at least one FROM instruction");
    let error = analyze("RUN x\n", &BTreeMap::new()).unwrap_err();
    assert!(matches!(error, Error::Syntax { line: 1, .. }), "{error}");

    let bom = ok("\u{feff}FROM alpine\n\nCOPY a /b\n");
    assert_eq!(sources(&bom), [("a", "COPY", 3)]);

    let backtick = ok("# escape=`\nFROM alpine\nCOPY a `\n  b /c\n");
    assert_eq!(sources(&backtick), [("a", "COPY", 3), ("b", "COPY", 3)]);
    assert_eq!(backtick.sources[0].text, "COPY a b /c");
}

#[test]
fn expansion_rules() {
    let lookup = |name: &str| match name {
        "A" => Some("a".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let cases = [
        ("$A", "a"),
        ("${A}x", "ax"),
        ("$A.txt", "a.txt"),
        ("\\$A", "$A"),
        ("'$A'", "$A"),
        ("\"$A b\"", "a b"),
        ("\"\\$A\"", "$A"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${NONE-d}", "d"),
        ("${EMPTY:+w}", ""),
        ("${EMPTY+w}", "w"),
        ("${NONE:-${A}}", "a"),
        ("$", "$"),
        ("a$1", "a$1"),
        ("50%", "50%"),
    ];
    for (word, expanded) in cases {
        assert_eq!(
            expand(word, '\\', &lookup).as_deref(),
            Ok(expanded),
            "{word}"
        );
    }
    assert_eq!(expand("$NONE", '\\', &lookup), Err("NONE".to_owned()));
    assert_eq!(expand("${NONE}", '\\', &lookup), Err("NONE".to_owned()));
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM ".to_owned()),
        Just("COPY ".to_owned()),
        Just("ADD ".to_owned()),
        Just("RUN ".to_owned()),
        Just("ARG ".to_owned()),
        Just("ENV ".to_owned()),
        Just("ONBUILD ".to_owned()),
        Just(" AS ".to_owned()),
        Just("--from=".to_owned()),
        Just("--mount=".to_owned()),
        Just("type=bind,from=".to_owned()),
        Just("--checksum=".to_owned()),
        Just("https://x/".to_owned()),
        Just("git@h:r.git".to_owned()),
        Just("<<EOF".to_owned()),
        Just("EOF".to_owned()),
        Just("\n".to_owned()),
        Just("\\\n".to_owned()),
        Just("\\".to_owned()),
        Just("`".to_owned()),
        Just("# escape=`\n".to_owned()),
        Just("[\"".to_owned()),
        Just("\"]".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just(" ".to_owned()),
        Just("$".to_owned()),
        Just("${".to_owned()),
        Just("}".to_owned()),
        Just(":-".to_owned()),
        Just(":+".to_owned()),
        Just("=".to_owned()),
        Just("A".to_owned()),
        Just("0".to_owned()),
        Just("\u{feff}".to_owned()),
        "[a-zA-Z./*?\\[\\]]{0,4}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Dockerfile-shaped noise: analysing it never panics, strict or lenient, and whatever it
    /// returns points at lines that exist.
    #[test]
    fn analysis_never_panics(parts in proptest::collection::vec(piece(), 0..48), arg in "[A0]?") {
        let text: String = parts.concat();
        let build_args = args(&[("A", &arg)]);
        let lines = text.split('\n').count();
        for lenient in [false, true] {
            match analyze_with(&text, &build_args, lenient) {
                Ok(analysis) => {
                    for line in analysis.froms.iter().map(|f| f.line)
                        .chain(analysis.sources.iter().map(|s| s.line))
                        .chain(analysis.unhashed.iter().map(|u| u.line))
                    {
                        prop_assert!(line >= 1 && line <= lines, "line {} of {}", line, lines);
                    }
                }
                Err(error) => {
                    let _ = error.to_string();
                }
            }
        }
    }

    /// Any text at all.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = analyze(&text, &BTreeMap::new());
    }

    /// Any word through the expansion.
    #[test]
    fn expansion_never_panics(word in any::<String>(), escape in prop_oneof![Just('\\'), Just('`')]) {
        let _ = expand(&word, escape, &|name| (name == "A").then(|| "a".to_owned()));
    }
}
