//! Commands on the connection and the server: parsed here, run by the front
//! end (they act on the connection's state or the server's settings, not on
//! a key)

use bytes::Bytes;

use super::{Args, Command, CommandError};

/// A connection or server command
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnCommand {
    /// `PING [message]`
    Ping(Option<Bytes>),
    /// `ECHO message`
    Echo(Bytes),
    /// `INFO [section ...]`, sections lower-cased
    Info(Vec<String>),
    /// `QUIT`
    Quit,
    /// `SELECT index`
    Select(i64),
    /// `CLIENT subcommand ...`
    Client(ClientCommand),
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`
    Hello(Vec<Bytes>),
    /// `AUTH [username] password`
    Auth {
        /// The user, if given (only `default` exists)
        user: Option<Bytes>,
        /// The password
        password: Bytes,
    },
    /// `CONFIG subcommand ...`
    Config(ConfigCommand),
    /// `COMMAND [subcommand ...]`
    Command(CommandCommand),
}

/// `CONFIG` subcommands
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigCommand {
    /// `CONFIG GET parameter [parameter ...]` (glob patterns)
    Get(Vec<Bytes>),
    /// `CONFIG SET parameter value [parameter value ...]`
    Set(Vec<(Bytes, Bytes)>),
    /// `CONFIG RESETSTAT`
    ResetStat,
}

/// `CLIENT` subcommands
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// `CLIENT SETNAME name`
    SetName(Bytes),
    /// `CLIENT SETINFO attr value` (`LIB-NAME`, `LIB-VER`)
    SetInfo {
        /// The attribute, as sent
        attr: Bytes,
        /// Its value
        value: Bytes,
    },
    /// `CLIENT GETNAME`
    GetName,
    /// `CLIENT ID`
    Id,
    /// Any other subcommand, lower-cased, with its arguments
    Other {
        /// The subcommand
        sub: String,
        /// Its arguments
        args: Vec<Bytes>,
    },
}

/// `COMMAND` subcommands
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandCommand {
    /// Bare `COMMAND`
    All,
    /// `COMMAND COUNT`
    Count,
    /// `COMMAND DOCS [name ...]`
    Docs(Vec<Bytes>),
    /// `COMMAND INFO [name ...]`
    Info(Vec<Bytes>),
    /// Any other subcommand, lower-cased, with its arguments
    Other {
        /// The subcommand
        sub: String,
        /// Its arguments
        args: Vec<Bytes>,
    },
}

/// The connection command `name` (lower-case) parsed from `args`, if it is
/// one
pub(crate) fn parse(name: &[u8], args: &mut Args) -> Option<Result<Command, CommandError>> {
    let parsed = match name {
        b"ping" => ping(args),
        b"echo" => args
            .exactly(2, "echo")
            .and_then(|()| args.bytes())
            .map(ConnCommand::Echo),
        b"info" => args.rest().map(|sections| {
            ConnCommand::Info(
                sections
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                    .collect(),
            )
        }),
        // Redis 7.2 accepts and ignores arguments to QUIT.
        b"quit" => args.rest().map(|_| ConnCommand::Quit),
        b"select" => args
            .exactly(2, "select")
            .and_then(|()| args.int())
            .map(ConnCommand::Select),
        b"client" => client(args),
        b"hello" => args.rest().map(ConnCommand::Hello),
        b"auth" => auth(args),
        b"config" => config(args),
        b"command" => command(args),
        _ => return None,
    };
    Some(parsed.map(Command::Conn))
}

/// # Format
/// `PING [message]`
fn ping(args: &mut Args) -> Result<ConnCommand, CommandError> {
    if args.argc() > 2 {
        return Err(CommandError::WrongArity("ping"));
    }
    let message = (args.argc() == 2).then(|| args.bytes()).transpose()?;
    Ok(ConnCommand::Ping(message))
}

/// # Format
/// `AUTH password`, `AUTH username password`
fn auth(args: &mut Args) -> Result<ConnCommand, CommandError> {
    match args.argc() {
        2 => Ok(ConnCommand::Auth {
            user: None,
            password: args.bytes()?,
        }),
        3 => Ok(ConnCommand::Auth {
            user: Some(args.bytes()?),
            password: args.bytes()?,
        }),
        _ => Err(CommandError::WrongArity("auth")),
    }
}

/// # Format
/// `CLIENT SETNAME name`, `CLIENT SETINFO attr value`, `CLIENT GETNAME`,
/// `CLIENT ID`, `CLIENT <other> ...`
fn client(args: &mut Args) -> Result<ConnCommand, CommandError> {
    args.at_least(2, "client")?;
    let sub = args.bytes()?.to_ascii_lowercase();
    let client = match sub.as_slice() {
        b"setname" => {
            args.exactly(3, "client|setname")?;
            ClientCommand::SetName(args.bytes()?)
        }
        b"setinfo" => {
            args.exactly(4, "client|setinfo")?;
            ClientCommand::SetInfo {
                attr: args.bytes()?,
                value: args.bytes()?,
            }
        }
        b"getname" => {
            args.exactly(2, "client|getname")?;
            ClientCommand::GetName
        }
        b"id" => {
            args.exactly(2, "client|id")?;
            ClientCommand::Id
        }
        _ => ClientCommand::Other {
            sub: String::from_utf8_lossy(&sub).into_owned(),
            args: args.rest()?,
        },
    };
    Ok(ConnCommand::Client(client))
}

/// # Format
/// `CONFIG GET parameter [parameter ...]`, `CONFIG SET parameter value
/// [parameter value ...]`, `CONFIG RESETSTAT`; other subcommands are refused
fn config(args: &mut Args) -> Result<ConnCommand, CommandError> {
    args.at_least(2, "config")?;
    let sub = args.bytes()?;
    let config = match sub.to_ascii_lowercase().as_slice() {
        b"get" => {
            args.at_least(3, "config|get")?;
            ConfigCommand::Get(args.rest()?)
        }
        b"set" => {
            if args.argc() < 4 || !args.argc().is_multiple_of(2) {
                return Err(CommandError::WrongArity("config|set"));
            }
            let mut pairs = Vec::new();
            while args.remaining() > 0 {
                pairs.push((args.bytes()?, args.bytes()?));
            }
            ConfigCommand::Set(pairs)
        }
        b"resetstat" => {
            args.exactly(2, "config|resetstat")?;
            ConfigCommand::ResetStat
        }
        _ => {
            return Err(CommandError::UnknownSubcommand {
                sub: String::from_utf8_lossy(&sub).into_owned(),
                cmd: "CONFIG",
            });
        }
    };
    Ok(ConnCommand::Config(config))
}

/// # Format
/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS [name ...]`,
/// `COMMAND INFO [name ...]`, `COMMAND <other> ...`
fn command(args: &mut Args) -> Result<ConnCommand, CommandError> {
    if args.remaining() == 0 {
        return Ok(ConnCommand::Command(CommandCommand::All));
    }
    let sub = args.bytes()?.to_ascii_lowercase();
    let command = match sub.as_slice() {
        b"count" => {
            args.exactly(2, "command|count")?;
            CommandCommand::Count
        }
        b"docs" => CommandCommand::Docs(args.rest()?),
        b"info" => CommandCommand::Info(args.rest()?),
        _ => CommandCommand::Other {
            sub: String::from_utf8_lossy(&sub).into_owned(),
            args: args.rest()?,
        },
    };
    Ok(ConnCommand::Command(command))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testing::parse;

    fn conn(parts: &[&str]) -> ConnCommand {
        match parse(parts) {
            Ok(Command::Conn(cmd)) => cmd,
            other => panic!("{parts:?}: {other:?}"),
        }
    }

    fn err(parts: &[&str]) -> String {
        parse(parts).unwrap_err().to_string()
    }

    #[test]
    fn connection_commands() {
        assert_eq!(conn(&["PING"]), ConnCommand::Ping(None));
        assert_eq!(conn(&["ping", "hi"]), ConnCommand::Ping(Some("hi".into())));
        assert_eq!(conn(&["Echo", "x"]), ConnCommand::Echo("x".into()));
        assert_eq!(
            err(&["PING", "a", "b"]),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(
            err(&["ECHO"]),
            "ERR wrong number of arguments for 'echo' command"
        );
        assert_eq!(conn(&["QUIT", "now"]), ConnCommand::Quit);
        assert_eq!(conn(&["SELECT", "0"]), ConnCommand::Select(0));
        assert_eq!(
            conn(&["INFO", "Keyspace"]),
            ConnCommand::Info(vec!["keyspace".into()])
        );
        assert_eq!(
            conn(&["AUTH", "default", "pw"]),
            ConnCommand::Auth {
                user: Some("default".into()),
                password: "pw".into()
            }
        );
        assert_eq!(
            err(&["AUTH", "a", "b", "c"]),
            "ERR wrong number of arguments for 'auth' command"
        );
        assert_eq!(
            conn(&["CLIENT", "SETNAME", "n"]),
            ConnCommand::Client(ClientCommand::SetName("n".into()))
        );
        assert_eq!(
            conn(&["COMMAND", "COUNT"]),
            ConnCommand::Command(CommandCommand::Count)
        );
    }

    #[test]
    fn config_subcommands() {
        assert_eq!(
            conn(&["CONFIG", "get", "max*"]),
            ConnCommand::Config(ConfigCommand::Get(vec!["max*".into()]))
        );
        assert_eq!(
            conn(&["CONFIG", "SET", "maxmemory", "10mb", "timeout", "0"]),
            ConnCommand::Config(ConfigCommand::Set(vec![
                ("maxmemory".into(), "10mb".into()),
                ("timeout".into(), "0".into()),
            ]))
        );
        assert_eq!(
            conn(&["CONFIG", "RESETSTAT"]),
            ConnCommand::Config(ConfigCommand::ResetStat)
        );
        assert_eq!(
            err(&["CONFIG", "SET", "maxmemory"]),
            "ERR wrong number of arguments for 'config|set' command"
        );
        assert_eq!(
            err(&["CONFIG", "GET"]),
            "ERR wrong number of arguments for 'config|get' command"
        );
        assert_eq!(
            err(&["CONFIG", "REWRITE"]),
            "ERR unknown subcommand 'REWRITE'. Try CONFIG HELP."
        );
    }
}
