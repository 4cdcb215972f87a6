package config

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pgnoded/pgnoded/internal/shlex"
)

// Validate checks the configuration at path as `pgnoded --validate-config`
// does: syntax, types, required keys and the timing rule (as Load), then the
// files the configuration points at. Those are checked only when they exist
// on this machine; a missing one is a warning, because configurations are
// often validated away from the node they are written for.
func Validate(path string, env []string) ([]Warning, error) {
	cfg, p := load(path, env)
	if cfg != nil {
		checkFiles(cfg, p)
	}
	return p.warnings(), p.err()
}

// pemKind is what a TLS file must contain.
type pemKind int

const (
	pemCert pemKind = iota
	pemKey
)

func checkFiles(c *Config, p *problems) {
	fc := fileChecker{c: c, p: p}
	r, ctl, e := c.RESTAPI, c.Ctl, c.Etcd3
	fc.pair("restapi.certfile", r.CertFile, "restapi.keyfile", r.KeyFile, r.KeyFilePassword != "")
	fc.pem("restapi.cafile", r.CAFile, pemCert)
	fc.pair("ctl.certfile", ctl.CertFile, "ctl.keyfile", ctl.KeyFile, ctl.KeyFilePassword != "")
	fc.pem("ctl.cacert", ctl.CACert, pemCert)
	fc.pair("etcd3.cert", e.Cert, "etcd3.key", e.Key, false)
	fc.pem("etcd3.cacert", e.CACert, pemCert)

	pg := c.PostgreSQL
	fc.dir("postgresql.data_dir", pg.DataDir)
	if pg.ConfigDir != pg.DataDir {
		fc.dir("postgresql.config_dir", pg.ConfigDir)
	}
	if fc.dir("postgresql.bin_dir", pg.BinDir) {
		bin := filepath.Join(pg.BinDir, "postgres")
		if name := pg.BinName["postgres"]; name != "" {
			bin = filepath.Join(pg.BinDir, name)
		}
		if !isExecutable(bin) {
			c.errorf(p, "postgresql.bin_dir", "%s has no executable postgres binary", pg.BinDir)
		}
	}
	fc.dir("log.dir", c.Log.Dir)
	if c.Exporter.Config != "" {
		if _, ok := fc.stat("exporter.config", c.Exporter.Config); ok {
			if f, err := os.Open(c.Exporter.Config); err != nil {
				c.errorf(p, "exporter.config", "cannot read %s: %v", c.Exporter.Config, unwrapPath(err))
			} else {
				_ = f.Close()
			}
		}
	}
	cb := pg.Callbacks
	for key, script := range map[string]string{
		"on_start": cb.OnStart, "on_stop": cb.OnStop, "on_restart": cb.OnRestart,
		"on_reload": cb.OnReload, "on_role_change": cb.OnRoleChange,
	} {
		fc.script("postgresql.callbacks."+key, script)
	}
	fc.script("postgresql.pre_promote", pg.PrePromote)
	fc.script("postgresql.before_stop", pg.BeforeStop)
	// Method commands are often bare names found on PATH: only their splitting
	// is checked, in every section (standby_cluster.create_replica_methods may
	// name one that postgresql.create_replica_methods does not).
	for name, section := range pg.ReplicaMethods {
		if m, ok := section.(map[string]any); ok {
			fc.splits("postgresql."+name+".command", m["command"])
		}
	}
	if m, ok := c.Bootstrap.Methods[c.Bootstrap.Method].(map[string]any); ok {
		fc.splits("bootstrap."+c.Bootstrap.Method+".command", m["command"])
	}
	fc.splits("bootstrap.post_bootstrap", c.Bootstrap.PostBootstrap)
}

// splits checks that a command line (when it is a string) splits as Patroni splits it (shlex).
func (f fileChecker) splits(key string, command any) {
	s, ok := command.(string)
	if !ok || s == "" {
		return
	}
	if _, err := shlex.Split(s); err != nil {
		f.c.errorf(f.p, key, "cannot split %q into arguments as Patroni does (shlex): %v", s, err)
	}
}

// fileChecker checks files named by configuration keys.
type fileChecker struct {
	c *Config
	p *problems
}

// stat reports whether the file exists; a missing file is a warning, any other failure an error.
func (f fileChecker) stat(key, name string) (fs.FileInfo, bool) {
	if name == "" {
		return nil, false
	}
	info, err := os.Stat(name)
	switch {
	case err == nil:
		return info, true
	case errors.Is(err, fs.ErrNotExist):
		f.p.warnf(f.c.where(key), key, "%s does not exist on this machine; not checked", name)
	default:
		f.c.errorf(f.p, key, "cannot check %s: %v", name, unwrapPath(err))
	}
	return nil, false
}

// dir checks that an existing path is a directory and reports whether it exists.
func (f fileChecker) dir(key, name string) bool {
	info, ok := f.stat(key, name)
	if ok && !info.IsDir() {
		f.c.errorf(f.p, key, "%s is not a directory", name)
		return false
	}
	return ok
}

// read returns the contents of an existing regular file.
func (f fileChecker) read(key, name string) ([]byte, bool) {
	info, ok := f.stat(key, name)
	if !ok {
		return nil, false
	}
	if info.IsDir() {
		f.c.errorf(f.p, key, "%s is a directory, expected a file", name)
		return nil, false
	}
	data, err := os.ReadFile(name)
	if err != nil {
		f.c.errorf(f.p, key, "cannot read %s: %v", name, unwrapPath(err))
		return nil, false
	}
	return data, true
}

// pem checks that an existing file holds a PEM block of the wanted kind.
func (f fileChecker) pem(key, name string, kind pemKind) ([]byte, bool) {
	data, ok := f.read(key, name)
	if !ok {
		return nil, false
	}
	if !hasPEM(data, kind) {
		what := "a PEM certificate"
		if kind == pemKey {
			what = "a PEM private key"
		}
		f.c.errorf(f.p, key, "%s does not contain %s", name, what)
		return nil, false
	}
	return data, true
}

// pair checks a certificate and its key, and that they match when both exist.
// An empty key file means the certificate file holds the key too.
func (f fileChecker) pair(certKey, cert, keyKey, key string, encrypted bool) {
	certPEM, certOK := f.pem(certKey, cert, pemCert)
	keyPEM, keyOK := certPEM, certOK
	if key != "" {
		keyPEM, keyOK = f.pem(keyKey, key, pemKey)
	} else if certOK && !hasPEM(certPEM, pemKey) {
		f.c.errorf(f.p, keyKey, "not set and %s holds no private key", cert)
		return
	}
	if !certOK || !keyOK || encrypted {
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		f.c.errorf(f.p, certKey, "%s and its key do not form a usable pair: %v", cert, err)
	}
}

// script checks a script's command line splits as Patroni splits it (shlex)
// and that an existing program is an executable file.
func (f fileChecker) script(key, command string) {
	fields, err := shlex.Split(command)
	if err != nil {
		f.c.errorf(f.p, key, "cannot split %q into arguments as Patroni does (shlex): %v", command, err)
		return
	}
	if len(fields) == 0 {
		return
	}
	info, ok := f.stat(key, fields[0])
	if ok && (info.IsDir() || info.Mode()&0o111 == 0) {
		f.c.errorf(f.p, key, "%s is not an executable file", fields[0])
	}
}

func hasPEM(data []byte, kind pemKind) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		switch {
		case kind == pemCert && b.Type == "CERTIFICATE":
			return true
		case kind == pemKey && bytes.HasSuffix([]byte(b.Type), []byte("PRIVATE KEY")):
			return true
		}
	}
}

func isExecutable(name string) bool {
	info, err := os.Stat(name)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}
