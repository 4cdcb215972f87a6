// Package hook runs the operator's scripts the way Patroni does:
// postgresql.callbacks (on_start, on_stop, on_restart, on_reload,
// on_role_change) asynchronously as `<cmd> <action> <role> <scope>`, and the
// synchronous postgresql.pre_promote and postgresql.before_stop. Commands are
// split like Python's shlex.split, run as the postgres OS user when pgnoded is
// root, logged with their exit status and duration, and counted.
package hook
