package ha

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// Editing the config key (Patroni's api.py do_PATCH_config, do_PUT_config). The
// write goes to the DCS; every node (this one through Wake, the others through
// their watch) applies the new dynamic configuration in its next cycle.

// PatchConfig deep-merges patch into the config key (a null value deletes the
// key; scalars compare by their string form) and writes it only when something
// changed, with a compare-and-swap on the key's revision. It returns the merged
// document (also when nothing changed), or OpConflict when the write lost,
// OpUnavailable without a config key, OpBadRequest for a refused setting.
func (n *Node) PatchConfig(ctx context.Context, patch map[string]any) ([]byte, error) {
	v := n.deps.Store.View()
	if len(v.ConfigRaw) == 0 || v.ConfigRev == 0 {
		return nil, cluster.Refuse(cluster.OpUnavailable, "the config key is missing")
	}
	data, err := decodeObject(v.ConfigRaw)
	if err != nil {
		return nil, cluster.Refuse(cluster.OpUnavailable, "the config key is not a JSON object")
	}
	cur, _ := decodeObject(v.ConfigRaw)
	if patchConfig(data, patch) {
		if why := n.refusedChange(cur, data); why != "" {
			n.log.Warn("config patch refused", "reason", why)
			return nil, cluster.Refuse(cluster.OpBadRequest, why)
		}
		raw, err := json.Marshal(data)
		if err != nil {
			return nil, cluster.Refuse(cluster.OpBadRequest, "cannot encode the merged config: "+err.Error())
		}
		wctx, cancel := n.writeCtx(ctx)
		ok, err := n.deps.Store.SetConfig(wctx, raw, v.ConfigRev)
		cancel()
		switch {
		case err != nil:
			n.log.Warn("cannot write the config key", "err", err)
			return nil, cluster.Refuse(cluster.OpStoreFailed, "failed to write the config key into DCS")
		case !ok:
			return nil, cluster.Refuse(cluster.OpConflict, "Conflict")
		}
		n.log.Info("config key patched", "revision", v.ConfigRev)
	}
	n.Wake()
	out, err := json.Marshal(data)
	if err != nil {
		return nil, cluster.Refuse(cluster.OpInternal, err.Error())
	}
	return out, nil
}

// PutConfig replaces the config key with doc when it differs and returns doc
// as written (OpStoreFailed when the write fails, OpBadRequest for a refused setting).
func (n *Node) PutConfig(ctx context.Context, doc map[string]any) ([]byte, error) {
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, cluster.Refuse(cluster.OpBadRequest, "cannot encode the config: "+err.Error())
	}
	for attempt := 0; ; attempt++ {
		v := n.deps.Store.View()
		cur, _ := decodeObject(v.ConfigRaw)
		if why := n.refusedChange(cur, doc); why != "" {
			n.log.Warn("config replacement refused", "reason", why)
			return nil, cluster.Refuse(cluster.OpBadRequest, why)
		}
		if cur, err := decodeObject(v.ConfigRaw); err == nil && v.ConfigRev != 0 && jsonEqual(cur, doc) {
			break
		}
		wctx, cancel := n.writeCtx(ctx)
		ok, err := n.deps.Store.SetConfig(wctx, out, v.ConfigRev)
		cancel()
		if err != nil {
			n.log.Warn("cannot write the config key", "err", err)
			return nil, cluster.Refuse(cluster.OpStoreFailed, "failed to write the config key into DCS")
		}
		if ok {
			n.log.Info("config key replaced", "previous_revision", v.ConfigRev)
			break
		}
		// Patroni overwrites unconditionally; the Store only offers compare-and-swap,
		// so a write that raced with another one is retried on the fresh revision.
		if attempt == 2 {
			return nil, cluster.Refuse(cluster.OpStoreFailed, "the config key kept changing; not written")
		}
	}
	n.Wake()
	return out, nil
}

// refusedChange is the 400 text when doc brings a setting pgnoded refuses
// that cur does not have ("key: pgnoded does not support … (what to do)", one
// per line); "" when it brings none. A refused setting already in the config
// key does not block other edits, and removing it is always accepted.
func (n *Node) refusedChange(cur, doc map[string]any) string {
	issues := cluster.NewIssues(n.refusedIn(cur), n.refusedIn(doc))
	if why := n.standbyAddRefused(cur, doc); why != "" {
		issues = append(issues, why)
	}
	return strings.Join(issues, "\n")
}

func (n *Node) writeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(n.Snapshot().RetryTimeout, time.Second))
}

// decodeObject decodes a JSON object keeping numbers exactly as written.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

// patchConfig is Patroni's patch_config: merge data into config recursively;
// nil deletes; a map merges into a map and replaces anything else; other
// values replace when their string forms differ. It reports whether config changed.
func patchConfig(config, data map[string]any) bool {
	changed := false
	for name, value := range data {
		cur, exists := config[name]
		switch {
		case value == nil:
			if exists && cur != nil {
				changed = true
			}
			delete(config, name)
		case !exists:
			config[name] = value
			changed = true
		default:
			if sub, ok := value.(map[string]any); ok {
				if curSub, ok := cur.(map[string]any); ok {
					changed = patchConfig(curSub, sub) || changed
				} else {
					config[name] = value
					changed = true
				}
			} else if pyfmt.Str(cur) != pyfmt.Str(value) {
				config[name] = value
				changed = true
			}
		}
	}
	return changed
}

// jsonEqual compares two decoded documents by value (numbers by their value).
func jsonEqual(a, b map[string]any) bool {
	na, err1 := normalize(a)
	nb, err2 := normalize(b)
	return err1 == nil && err2 == nil && reflect.DeepEqual(na, nb)
}

func normalize(v map[string]any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(raw, &out)
}
