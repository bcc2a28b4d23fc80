package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Override is a setting given outside the file, such as a command-line
// flag, that takes precedence over the file's value. It is applied before
// defaults and validation, so every rule sees the value in force, and a
// message about it names Source rather than a line of the file.
type Override struct {
	// Key is the setting's path, such as "listen" or "admin.listen"; it
	// must name a string setting.
	Key   string
	Value string
	// Source names the override in messages, such as "-listen".
	Source string
}

// apply sets o's key in cfg and records where the value came from.
func (o Override) apply(cfg *Config, pos *positions) error {
	v := reflect.ValueOf(cfg).Elem()
	for part := range strings.SplitSeq(o.Key, ".") {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		idx, ok := v.Kind() == reflect.Struct, false
		if idx {
			var f []int
			f, ok = fieldsOf(v.Type()).byName[part]
			if ok {
				v = v.FieldByIndex(f)
			}
		}
		if !ok {
			return fmt.Errorf("%s: no setting %s", o.Source, quote(o.Key))
		}
	}
	if v.Kind() == reflect.Pointer {
		v.Set(reflect.New(v.Type().Elem()))
		v = v.Elem()
	}
	if v.Kind() != reflect.String {
		return fmt.Errorf("%s: %s is not a string setting", o.Source, quote(o.Key))
	}
	v.SetString(o.Value)
	pos.set[o.Key] = true
	pos.src[o.Key] = o.Source + " " + o.Value
	return nil
}

// Where says where key's value came from, for messages about it made
// outside this package: "FILE:LINE" when the file set it, the flag when an
// override did, or "default" when neither did.
func (c *Config) Where(key string) string {
	switch {
	case c.pos.source(key) != "":
		s, _, _ := strings.Cut(c.pos.source(key), " ")
		return s
	case c.pos.isSet(key):
		return fmt.Sprintf("%s:%d", c.File, c.pos.lookup(key).Line)
	}
	return "default"
}
