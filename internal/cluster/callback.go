package cluster

// Callback names a postgresql.callbacks event (Patroni's CallbackAction). The
// command configured for it runs as `<cmd> <callback> <role> <scope>`.
type Callback string

// Patroni's callbacks.
const (
	OnStart      Callback = "on_start"
	OnStop       Callback = "on_stop"
	OnRestart    Callback = "on_restart"
	OnReload     Callback = "on_reload"
	OnRoleChange Callback = "on_role_change"
)

// Callbacks lists every callback in Patroni's order.
var Callbacks = []Callback{OnStart, OnStop, OnRestart, OnReload, OnRoleChange}

// Hook names a script run synchronously around a postgres event
// (postgresql.pre_promote, postgresql.before_stop).
type Hook string

// Patroni's synchronous hooks.
const (
	PrePromote Hook = "pre_promote"
	BeforeStop Hook = "before_stop"
)

// HookRun is the label set of pgnoded_callback_runs_total: which callback or
// hook ran and how it ended ("0", "1", ... for an exit status, "killed" when a
// signal ended it, "error" when it could not be started).
type HookRun struct {
	Callback string
	Exit     string
}
