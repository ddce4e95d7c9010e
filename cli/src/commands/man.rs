//! `man`: the manual page, docker-mount(1) in roff, generated from the clap
//! definitions: the global options, then every command with its synopsis,
//! options and examples, so that one page says it all.

use std::io::Write as _;

use anyhow::Result;
use clap::CommandFactory as _;
use clap_mangen::Man;

use crate::Cli;

const BIN: &str = "docker-mount";

/// What the page says after the commands: files, exit status, see also.
const TAIL: &str = r#".SH "DRIVER PLUGINS"
Storage drivers are plugins, \fIlibdocker_mount_driver_<name>.so\fR, loaded from the
\fIdrivers/\fR directory next to the \fBdocker\-mount\fR executable and from each
\fB\-\-driver\-dir\fR; never from the evidence. \fBdocker\-mount drivers\fR lists
those loaded and those that failed, with the reason. A root whose driver is not
installed still lists; its filesystems cannot be opened until the plugin is.
.SH SAFETY
Nothing under the evidence root is written: files are opened read\-only beneath the
root without following symlinks, with O_NOATIME; mounts are
ro,nosuid,nodev,noexec and reach the root only through a private read\-only noatime
view. \fBdocker\-mount doctor\fR tells what this machine can do, and what each
command will use: kernel mounts, FUSE or userspace reads only.
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Logging filter (overrides \fB\-v\fR), e.g. \fIdocker_mount_core=debug\fR.
.TP
\fBTMPDIR\fR
Where private mount points are made; never inside the evidence.
.SH "EXIT STATUS"
0 on success, 1 on an error (printed on standard error with what to do next), 2 on
a usage error.
.SH "SEE ALSO"
\fBmactime\fR(1), \fBmount\fR(8), \fBfusermount3\fR(1), and the guide
(\fIguide.md\fR in the distribution): an incident walk\-through.
"#;

/// `.SH` headings of a command's sections, as they are to appear under
/// its `.SS` in the COMMANDS section (`None`: dropped).
fn subsection(heading: &str) -> Option<&'static str> {
    match heading {
        "SYNOPSIS" => None,
        _ => Some(".PP"),
    }
}

/// Renders one command's sections through `render` and moves them under
/// the command's own subsection.
fn nested(man: &Man, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut raw = Vec::new();
    man.render_synopsis_section(&mut raw)?;
    man.render_description_section(&mut raw)?;
    man.render_options_section(&mut raw)?;
    man.render_extra_section(&mut raw)?;
    for line in String::from_utf8_lossy(&raw).lines() {
        match line.strip_prefix(".SH ") {
            Some(h) => {
                if let Some(replacement) = subsection(h.trim_matches('"')) {
                    writeln!(out, "{replacement}")?;
                }
            }
            None => writeln!(out, "{line}")?,
        }
    }
    Ok(())
}

/// The whole page.
pub fn render() -> std::io::Result<Vec<u8>> {
    let cli = Cli::command();
    let top = Man::new(cli.clone()).manual("docker-mount manual");
    let mut out = Vec::new();
    top.render_title(&mut out)?;
    top.render_name_section(&mut out)?;
    top.render_synopsis_section(&mut out)?;
    top.render_description_section(&mut out)?;
    writeln!(
        out,
        ".PP\nA container is named by full id, unique id prefix or name; an image by name:tag, id or unique id prefix.\n\\fB\\-\\-json\\fR gives stable machine output."
    )?;
    top.render_options_section(&mut out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{BIN} {}", sub.get_name());
        writeln!(out, ".SS \"{name}\"")?;
        // Every command takes -h: the page need not say so each time.
        let sub = sub.clone().bin_name(name).disable_help_flag(true);
        nested(&Man::new(sub), &mut out)?;
    }
    let mut example = Vec::new();
    top.render_extra_section(&mut example)?;
    out.extend(
        String::from_utf8_lossy(&example)
            .replace(".SH EXTRA", ".SH EXAMPLE")
            .bytes(),
    );
    out.extend_from_slice(TAIL.as_bytes());
    top.render_version_section(&mut out)?;
    Ok(once_preamble(&out))
}

/// Each section rendered on its own repeats roff's preamble (the `Aq`
/// string's definition): keep the first.
fn once_preamble(page: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(page);
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if !preamble || seen.insert(line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

pub fn run() -> Result<()> {
    let page = render()?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&page)?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_help_has_an_example() {
        let cli = Cli::command();
        let top = cli
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(top.contains("Example"), "docker-mount --help: {top}");
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("Example") && help.contains("docker-mount "),
                "`docker-mount {} --help` shows no example",
                sub.get_name()
            );
        }
    }

    #[test]
    fn page_names_every_command() {
        let page = String::from_utf8(render().unwrap_or_default()).unwrap_or_default();
        assert_eq!(page.matches(".TH ").count(), 1, "{page}");
        assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble: {page}");
        for sub in Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
        {
            let heading = format!(".SS \"docker-mount {}\"", sub.get_name());
            assert!(page.contains(&heading), "no {heading}");
        }
    }
}
