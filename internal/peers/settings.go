// Package peers is pgnoded's HTTP client for the other members' REST APIs:
// the leader race's GET /patroni (whose document it parses into the HA
// loop's PeerStatus) and failsafe mode's POST /failsafe. It
// authenticates as Patroni's daemon does (patroni/request.py, built with
// insecure=True): Basic auth and a client certificate from the ctl section,
// else from restapi; with a client certificate the peer's chain is verified
// against ctl.cacert (else restapi.cafile) without checking the host name;
// without one nothing is verified.
package peers

import (
	"github.com/pgnoded/pgnoded/internal/config"
)

// Settings are the credentials and TLS files of peer requests, resolved from
// the configuration (SettingsFrom).
type Settings struct {
	Username    string // Basic auth; empty: no Authorization header
	Password    string
	CertFile    string // client certificate; empty: no certificate and no verification
	KeyFile     string // empty: the key is in CertFile
	KeyPassword string // decrypts an encrypted PEM key
	CAFile      string // verifies the peer's chain (with a client certificate only); empty: system roots
}

// SettingsFrom resolves Patroni's precedence: ctl.authentication, else
// restapi.authentication; ctl.certfile/keyfile/keyfile_password, else
// restapi's (each key on its own, as Patroni 3.0.2's _get_cfg_value reads
// them); ctl.cacert, else restapi.cafile.
func SettingsFrom(c *config.Config) Settings {
	auth := c.CtlAuth()
	return Settings{
		Username:    auth.Username,
		Password:    auth.Password,
		CertFile:    first(c.Ctl.CertFile, c.RESTAPI.CertFile),
		KeyFile:     first(c.Ctl.KeyFile, c.RESTAPI.KeyFile),
		KeyPassword: first(c.Ctl.KeyFilePassword, c.RESTAPI.KeyFilePassword),
		CAFile:      first(c.Ctl.CACert, c.RESTAPI.CAFile),
	}
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
