package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/ha/dcs"
)

func editConfigCommand() command {
	return command{
		synopsis: "[CLUSTER] [-s KEY.PATH=VALUE]... [-p GUC=VALUE]... [--apply FILE|-] [--replace FILE|-] [-q] [--force]",
		help:     "Change the dynamic configuration: in $EDITOR, or with -s/-p/--apply/--replace",
		setup: func(f *flags) runFunc {
			var o editOpts
			f.listVar(&o.set, "set KEY.PATH=VALUE, e.g. -s loop_wait=5 (YAML value; null removes the key); repeatable", "-s", "--set")
			f.listVar(&o.pg, "set GUC=VALUE, short for -s postgresql.parameters.GUC=VALUE; repeatable", "-p", "--pg")
			f.stringVar(&o.apply, "merge FILE (YAML; - for stdin) into the configuration", "--apply")
			f.stringVar(&o.replace, "replace the configuration with FILE (YAML; - for stdin)", "--replace")
			f.boolVar(&o.quiet, "do not show the changes", "-q", "--quiet")
			f.boolVar(&o.force, "apply without asking", "--force")
			return func(ctx context.Context, a *app, pos []string) error { return a.editConfig(ctx, pos, o) }
		},
	}
}

type editOpts struct {
	set, pg        []string
	apply, replace string
	quiet, force   bool
}

func (a *app) editConfig(ctx context.Context, pos []string, o editOpts) error {
	name, err := a.clusterName(pos)
	if err != nil {
		return err
	}
	pairs := append([]string(nil), o.set...)
	for _, p := range o.pg {
		pairs = append(pairs, "postgresql.parameters."+strings.TrimLeft(p, " \t"))
	}
	for _, p := range pairs {
		if !strings.Contains(p, "=") {
			return usagef("Invalid parameter setting %s", strings.TrimPrefix(p, "postgresql.parameters."))
		}
	}
	v, err := a.view(ctx, name)
	if err != nil {
		return err
	}
	data, err := decodeConfig(v.ConfigRaw)
	if err != nil {
		return err
	}
	before, err := toYAML(data, false)
	if err != nil {
		return err
	}
	changed, after, edited := data, "", false
	if o.replace != "" {
		doc, err := a.readYAMLFile(o.replace)
		if err != nil {
			return err
		}
		changed, edited = patchConfig(map[string]any{}, doc), true
	}
	if o.apply != "" {
		doc, err := a.readYAMLFile(o.apply)
		if err != nil {
			return err
		}
		changed, edited = patchConfig(deepCopy(changed).(map[string]any), doc), true
	}
	if len(pairs) > 0 {
		if changed, err = applyConfigChanges(changed, pairs); err != nil {
			return err
		}
		edited = true
	}
	if edited {
		if after, err = toYAML(changed, false); err != nil {
			return err
		}
	} else if after, changed, err = a.invokeEditor(ctx, before, name); err != nil {
		return err
	}
	if reflect.DeepEqual(data, changed) {
		if !o.quiet {
			a.println("Not changed")
		}
		return nil
	}
	if !o.quiet {
		io.WriteString(a.env.Stdout, unifiedDiff(before, after))
	}
	compat := cluster.Compat302
	if a.cfg != nil {
		compat = a.cfg.PGNoded.Compat
	}
	if why := refusedEdit(data, changed, compat); why != "" {
		// The nodes would refuse it too (PATCH /config answers 400 with the same reason).
		return errors.New("not applied: " + why)
	}
	if (o.apply == "-" || o.replace == "-") && !o.force {
		a.println("Use --force option to apply changes")
		return nil
	}
	if !o.force {
		ok, err := a.confirm("Apply these changes?")
		if err != nil || !ok {
			return err
		}
	}
	raw, err := dcs.EncodeValue(changed)
	if err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	st, err := a.store()
	if err != nil {
		return err
	}
	ok, err := st.SetConfig(ctx, name, raw, v.ConfigRev)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("Config modification aborted due to concurrent changes")
	}
	a.println("Configuration changed")
	return nil
}

// applyConfigChanges is patronictl's apply_config_changes: each "a.b.c=value"
// sets a dotted path to a YAML-parsed value (null removes it, and parents left
// empty go too); below postgresql.parameters the rest of the path is one GUC
// name, so dotted GUCs like pg_stat_statements.max work.
func applyConfigChanges(data map[string]any, pairs []string) (map[string]any, error) {
	out := deepCopy(data).(map[string]any)
	for _, p := range pairs {
		key, raw, ok := strings.Cut(p, "=")
		if !ok {
			return nil, usagef("Invalid parameter setting %s", p)
		}
		var val any
		if err := yaml.Unmarshal([]byte(raw), &val); err != nil {
			return nil, usagef("value of %s is not valid YAML: %v", strings.TrimSpace(key), err)
		}
		setPath(out, strings.Split(strings.TrimSpace(key), "."), normalize(val), nil)
	}
	return out, nil
}

func setPath(m map[string]any, path []string, val any, prefix []string) {
	if len(prefix) == 2 && prefix[0] == "postgresql" && prefix[1] == "parameters" {
		path = []string{strings.Join(path, ".")}
	}
	key := path[0]
	if len(path) == 1 {
		if val == nil {
			delete(m, key)
		} else {
			m[key] = val
		}
		return
	}
	child, ok := m[key].(map[string]any)
	if !ok {
		child = map[string]any{}
		m[key] = child
	}
	setPath(child, path[1:], val, append(prefix, key))
	if len(child) == 0 {
		delete(m, key)
	}
}

// patchConfig is Patroni's patch_config: a deep merge where null removes a key
// and scalars are compared by their string form.
func patchConfig(m map[string]any, patch map[string]any) map[string]any {
	for k, v := range patch {
		old, exists := m[k]
		switch {
		case v == nil:
			delete(m, k)
		case !exists:
			m[k] = v
		default:
			pm, isMap := v.(map[string]any)
			om, oldMap := old.(map[string]any)
			switch {
			case isMap && oldMap:
				m[k] = patchConfig(om, pm)
			case isMap:
				m[k] = v
			case fmt.Sprint(old) != fmt.Sprint(v):
				m[k] = v
			}
		}
	}
	return m
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// readYAMLFile reads a YAML mapping from a file, or stdin for "-".
func (a *app) readYAMLFile(name string) (map[string]any, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(a.in)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return parseYAMLMapping(b, name)
}

func parseYAMLMapping(b []byte, what string) (map[string]any, error) {
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	m, ok := normalize(doc).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: not a YAML mapping", what)
	}
	return m, nil
}

// invokeEditor opens the configuration in $EDITOR (else editor or vi) and
// returns the edited text and its parsed form.
func (a *app) invokeEditor(ctx context.Context, before, clusterName string) (string, map[string]any, error) {
	editor := a.getenv("EDITOR")
	if strings.TrimSpace(editor) == "" {
		for _, e := range []string{"editor", "vi"} {
			if p, err := exec.LookPath(e); err == nil {
				editor = p
				break
			}
		}
	}
	if strings.TrimSpace(editor) == "" {
		return "", nil, errors.New("EDITOR environment variable is not set. editor or vi are not available")
	}
	f, err := os.CreateTemp("", strings.ReplaceAll(clusterName, "/", "_")+"-config-*.yaml")
	if err != nil {
		return "", nil, fmt.Errorf("temporary file: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	_, werr := f.WriteString(before)
	if cerr := f.Close(); werr != nil || cerr != nil {
		return "", nil, fmt.Errorf("write %s: %w", path, errors.Join(werr, cerr))
	}
	argv := strings.Fields(editor)
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], path)...)
	cmd.Stdout, cmd.Stderr = a.env.Stdout, a.env.Stderr
	if tty, ok := a.env.Stdin.(*os.File); ok {
		cmd.Stdin = tty // the terminal; piped input stays ours (for the confirmation)
	}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", nil, fmt.Errorf("Editor exited with return code %d", ee.ExitCode())
		}
		return "", nil, fmt.Errorf("run editor %q: %w", editor, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	m, err := parseYAMLMapping(b, "edited configuration")
	if err != nil {
		return "", nil, err
	}
	return string(b), m, nil
}

// refusedEdit names the settings the edit brings that pgnoded refuses
// (docs/config-keys.md), "key: pgnoded does not support … (what to do)" joined
// by "; ", or "" when it brings none. One already in the config key does not
// block other edits. compat is the configuration's pgnoded.compat (quorum
// mode is refused under 3.0.2 only).
func refusedEdit(before, after map[string]any, compat cluster.Compat) string {
	refused, _ := config.DynamicChecks(compat)
	return strings.Join(cluster.NewIssues(refused(before), refused(after)), "; ")
}
