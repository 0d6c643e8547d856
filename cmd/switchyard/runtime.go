package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/coord"
	"github.com/switchyard/switchyard/internal/atomicfile"
)

// Runtime configuration: the admin port changes users, rules, weights
// and offline state while the process runs. A change is built as a
// conf.Runtime layer, laid over the config file, validated and planned
// like a reload, then persisted and applied:
//
//	alone        the layer is written into the config file (comments
//	             kept) and the file becomes the running config;
//	coordinated  the layer is stored in etcd (compare-and-swap on its
//	             revision); every instance, this one included, lays it
//	             over its own file and applies it (WatchRuntime).
//
// Either way nothing is applied unless everything validated.

// runtimeEdit changes the layer, given the running config.
type runtimeEdit func(layer *conf.Runtime, running *conf.Config) error

// loadConfig reads the config file with the runtime layer over it (the
// etcd one when coordinated, or layer when given).
func (a *app) loadConfig(path string, layer *conf.Runtime) (*conf.Config, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if layer == nil {
		layer = a.layer.Load()
	}
	if layer != nil {
		if text, err = conf.ApplyRuntime(text, *layer); err != nil {
			return nil, fmt.Errorf("runtime configuration: %w", err)
		}
	}
	return conf.Parse(text, path)
}

// changeRuntime runs one admin change and returns the version it made.
func (a *app) changeRuntime(what string, edit runtimeEdit) (int64, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	running := a.cfg.Load()
	if a.coord != nil {
		return a.changeInEtcd(what, edit, running)
	}
	var delta conf.Runtime
	if err := edit(&delta, running); err != nil {
		return 0, err
	}
	text, err := os.ReadFile(running.Path)
	if err != nil {
		return 0, err
	}
	if text, err = conf.ApplyRuntime(text, delta); err != nil {
		return 0, err
	}
	next, err := conf.Parse(text, running.Path)
	if err != nil {
		return 0, err
	}
	if fixed := needsRestart(running, next); len(fixed) > 0 {
		return 0, fmt.Errorf("the change touches settings that need a restart: %v", fixed)
	}
	plan, err := a.planReload(next)
	if err != nil {
		return 0, err
	}
	if err := atomicfile.Write(running.Path, text, 0o600); err != nil {
		return 0, fmt.Errorf("persist to %s: %w", running.Path, err)
	}
	if err := plan.apply(a); err != nil {
		return 0, err // the file has it: the next reload applies it
	}
	a.cfg.Store(next)
	v := a.version.Add(1)
	a.log.Info("configuration changed on the admin port", zap.String("change", what), zap.Int64("version", v), zap.String("file", running.Path))
	return v, nil
}

// changeInEtcd stores the changed layer in etcd, then applies it here;
// the other instances apply it from their watch.
func (a *app) changeInEtcd(what string, edit runtimeEdit, running *conf.Config) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stored, err := a.coord.LoadRuntime(ctx)
	if err != nil {
		return 0, err
	}
	layer := conf.Runtime{}
	if len(stored.Text) > 0 {
		if layer, err = conf.UnmarshalRuntime(stored.Text); err != nil {
			return 0, err
		}
	}
	if err := edit(&layer, running); err != nil {
		return 0, err
	}
	layer.Version++
	next, err := a.loadConfig(running.Path, &layer)
	if err != nil {
		return 0, err
	}
	if fixed := needsRestart(running, next); len(fixed) > 0 {
		return 0, fmt.Errorf("the change touches settings that need a restart: %v", fixed)
	}
	if _, err := a.planReload(next); err != nil {
		return 0, err
	}
	text, err := conf.MarshalRuntime(layer)
	if err != nil {
		return 0, err
	}
	if err := a.coord.StoreRuntime(ctx, stored.Revision, text); err != nil {
		return 0, fmt.Errorf("store the change in etcd: %w", err)
	}
	if err := a.applyLayer(layer); err != nil {
		return 0, err
	}
	a.log.Info("configuration changed on the admin port, shared through etcd", zap.String("change", what), zap.Int64("version", layer.Version))
	return layer.Version, nil
}

// applyLayer applies a runtime layer from etcd over the config file
// (the caller holds reloadMu); an older or equal version than the one
// applied is ignored.
func (a *app) applyLayer(layer conf.Runtime) error {
	if cur := a.layer.Load(); cur != nil && layer.Version <= cur.Version {
		return nil
	}
	next, err := a.loadConfig(a.cfg.Load().Path, &layer)
	if err != nil {
		return err
	}
	if err := a.applyConfig(next); err != nil {
		return err
	}
	a.layer.Store(&layer)
	a.version.Store(layer.Version)
	a.coord.SetConfigVersion(layer.Version)
	return nil
}

// watchRuntime applies every layer another instance stores.
func (a *app) watchRuntime() {
	a.coord.WatchRuntime(func(r coord.Runtime) {
		if len(r.Text) == 0 {
			return
		}
		layer, err := conf.UnmarshalRuntime(r.Text)
		if err != nil {
			a.log.Error("the runtime configuration in etcd does not parse: not applied", zap.Error(err))
			return
		}
		a.reloadMu.Lock()
		defer a.reloadMu.Unlock()
		if err := a.applyLayer(layer); err != nil {
			a.log.Error("the runtime configuration from etcd is refused here: keeping the running one",
				zap.Int64("version", layer.Version), zap.Error(err))
		}
	})
}

// The edits behind the admin commands.

func addUserEdit(u admin.UserChange) runtimeEdit {
	return func(layer *conf.Runtime, running *conf.Config) error {
		if u.Name == "" {
			return errors.New("a user needs a name")
		}
		hash := u.PasswordHash
		if hash == "" {
			hash = conf.NativePasswordHash(u.Password)
		}
		if !conf.ValidPasswordHash(hash) {
			return fmt.Errorf("%q is not a mysql_native_password hash (* and 40 hex digits)", hash)
		}
		if u.Backend == "" {
			return errors.New("name the backend account: BACKEND 'account'")
		}
		secret := u.BackendPassword
		if secret == "" { // a configured user's, as written (a ${VAR} stays one)
			for _, other := range running.Users {
				if other.BackendUser == u.Backend && other.BackendPassword.Value() != "" {
					secret = other.BackendPassword.Raw()
					break
				}
			}
			if secret == "" {
				return fmt.Errorf("no configured user has the backend account %s: give its password (BACKEND '%s' IDENTIFIED BY '…')", u.Backend, u.Backend)
			}
		}
		layer.Users = slices.DeleteFunc(layer.Users, func(x conf.RuntimeUser) bool { return x.Name == u.Name })
		layer.DroppedUsers = slices.DeleteFunc(layer.DroppedUsers, func(n string) bool { return n == u.Name })
		layer.Users = append(layer.Users, conf.RuntimeUser{Name: u.Name, PasswordHash: hash, BackendUser: u.Backend,
			BackendSecret: secret, Cluster: u.Cluster, MaxConnections: u.MaxConnections})
		return nil
	}
}

func dropUserEdit(name string) runtimeEdit {
	return func(layer *conf.Runtime, running *conf.Config) error {
		if !slices.ContainsFunc(running.Users, func(u conf.User) bool { return u.Name == name }) {
			return fmt.Errorf("no user %q", name)
		}
		layer.Users = slices.DeleteFunc(layer.Users, func(x conf.RuntimeUser) bool { return x.Name == name })
		if !slices.Contains(layer.DroppedUsers, name) {
			layer.DroppedUsers = append(layer.DroppedUsers, name)
		}
		return nil
	}
}

func addRuleEdit(text, before string) runtimeEdit {
	return func(layer *conf.Runtime, running *conf.Config) error {
		var r conf.Rule
		dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
		dec.KnownFields(true)
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("the rule does not parse: %w", err)
		}
		list := slices.Clone(running.Rules)
		list = slices.DeleteFunc(list, func(x conf.Rule) bool { return x.Name == r.Name })
		at := len(list)
		if before != "" {
			if at = slices.IndexFunc(list, func(x conf.Rule) bool { return x.Name == before }); at < 0 {
				return fmt.Errorf("no rule %q to add it before", before)
			}
		}
		list = slices.Insert(list, at, r)
		layer.Rules = &list
		return nil
	}
}

func dropRuleEdit(name string) runtimeEdit {
	return func(layer *conf.Runtime, running *conf.Config) error {
		list := slices.DeleteFunc(slices.Clone(running.Rules), func(x conf.Rule) bool { return x.Name == name })
		if len(list) == len(running.Rules) {
			return fmt.Errorf("no rule %q", name)
		}
		layer.Rules = &list
		return nil
	}
}

func weightEdit(backend string, w int) runtimeEdit {
	return func(layer *conf.Runtime, _ *conf.Config) error {
		if layer.Weights == nil {
			layer.Weights = map[string]int{}
		}
		layer.Weights[backend] = w
		return nil
	}
}

func offlineEdit(backend string, off bool) runtimeEdit {
	return func(layer *conf.Runtime, _ *conf.Config) error {
		if layer.Offline == nil {
			layer.Offline = map[string]bool{}
		}
		layer.Offline[backend] = off
		return nil
	}
}
