//! Command subtrees that clap builds only when the command line reaches them.

use clap::{ArgMatches, Args, FromArgMatches, Subcommand};

use crate::cli::Cli;

/// A command's subtree that clap builds only when the command line reaches it (clap's
/// `Command::defer`): a run builds the top level and the one path it takes instead of every
/// command's arguments, which was most of azdock's start-up. Help, completions and man pages
/// build the whole tree as before.
#[derive(Debug)]
pub struct Lazy<T>(pub T);

thread_local! {
    /// Set while the tree for completions and man pages is built, which walk every command: clap
    /// makes its `help` subcommand's tree from the commands as they are when the top is built.
    static WHOLE_TREE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The whole command tree, every subtree built at once (for completions and man pages).
pub(crate) fn whole_tree() -> clap::Command {
    WHOLE_TREE.set(true);
    let tree = <Cli as clap::CommandFactory>::command();
    WHOLE_TREE.set(false);
    tree
}

fn lazily(cmd: clap::Command, augment: fn(clap::Command) -> clap::Command) -> clap::Command {
    if WHOLE_TREE.get() { augment(cmd) } else { cmd.defer(augment) }
}

impl<T> std::ops::Deref for Lazy<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Self)
    }
    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(matches).map(Self)
    }
    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
    fn update_from_arg_matches_mut(&mut self, matches: &mut ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(matches)
    }
}

impl<T: Subcommand> Subcommand for Lazy<T> {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_subcommands)
    }
    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_subcommands_for_update)
    }
    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

impl<T: Args> Args for Lazy<T> {
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
    fn augment_args(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_args)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_args_for_update)
    }
}

#[cfg(test)]
mod tests {
    use super::{Cli, Lazy, whole_tree};

    /// A run builds the commands its line reaches, not the ~100 others; completions and man
    /// pages still see every command, `help`'s own tree included.
    #[test]
    fn a_run_builds_only_the_commands_it_reaches() {
        let lazy = <Cli as clap::CommandFactory>::command();
        let vm = lazy.find_subcommand("vm").expect("vm");
        assert_eq!(vm.get_subcommands().count(), 0, "vm's subtree is built only when reached");
        assert!(vm.get_about().is_some(), "the top level's help still describes vm");

        let whole = whole_tree();
        let vm = whole.find_subcommand("vm").expect("vm");
        assert!(vm.find_subcommand("docker").and_then(|d| d.find_subcommand("create")).is_some());
        let mut built = whole_tree();
        built.build();
        let help = built.find_subcommand("help").expect("help");
        assert!(help.find_subcommand("vm").and_then(|vm| vm.find_subcommand("docker")).is_some());

        let cli = <Cli as clap::Parser>::try_parse_from([
            "azdock",
            "certs",
            "-C",
            "/pki",
            "server",
            "vm1",
            "--dns",
            "vm1.example",
        ])
        .expect("a nested command parses through the lazy tree");
        let crate::cli::Command::Certs(Lazy(certs)) = cli.command else { panic!("not certs: {:?}", cli.command) };
        assert_eq!(certs.docker_cert_dir.as_deref(), Some(std::path::Path::new("/pki")));
        assert!(
            matches!(&certs.command, crate::cli::CertsCommand::Server { host, dns, .. } if host == "vm1" && dns == &["vm1.example"]),
            "{:?}",
            certs.command
        );
        let err = <Cli as clap::Parser>::try_parse_from(["azdock", "vm", "docker", "create"]).expect_err("NAME");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{err}");
    }

    /// `Lazy` is clap's own type to the derive: the subcommand names, the argument group and
    /// updating parsed values all pass through to the type inside.
    #[test]
    fn a_lazy_subtree_answers_for_the_type_inside() {
        use crate::cli::{CertsArgs, VmCommand};
        use clap::{Args as _, FromArgMatches as _, Parser as _, Subcommand as _};
        assert!(Lazy::<VmCommand>::has_subcommand("docker"));
        assert!(!Lazy::<VmCommand>::has_subcommand("no-such-command"));
        assert_eq!(Lazy::<CertsArgs>::group_id(), CertsArgs::group_id());
        assert!(Lazy::<CertsArgs>::group_id().is_some());

        let mut cli = Cli::try_parse_from(["azdock", "certs", "-C", "/one", "init"]).expect("parses");
        cli.try_update_from(["azdock", "certs", "-C", "/two", "init"]).expect("updates");
        let crate::cli::Command::Certs(Lazy(certs)) = &cli.command else { panic!("not certs: {:?}", cli.command) };
        assert_eq!(certs.docker_cert_dir.as_deref(), Some(std::path::Path::new("/two")));

        // The `_for_update` trees are the inner types' trees, once built.
        let mut certs = Lazy::<CertsArgs>::augment_args_for_update(clap::Command::new("certs"));
        certs.build();
        assert!(certs.find_subcommand("server").is_some());
        let mut vm = Lazy::<VmCommand>::augment_subcommands_for_update(clap::Command::new("vm"));
        vm.build();
        assert!(vm.find_subcommand("docker").is_some());
        let matches =
            CertsArgs::augment_args(clap::Command::new("certs")).get_matches_from(["certs", "-C", "/three", "init"]);
        let mut lazy = Lazy(CertsArgs::from_arg_matches(&matches).expect("certs"));
        let matches =
            CertsArgs::augment_args(clap::Command::new("certs")).get_matches_from(["certs", "-C", "/four", "init"]);
        clap::FromArgMatches::update_from_arg_matches(&mut lazy, &matches).expect("updates");
        assert_eq!(lazy.docker_cert_dir.as_deref(), Some(std::path::Path::new("/four")));
    }
}
