//go:build !unix

package server

import "errors"

// errTooManyFiles matches nothing where EMFILE does not exist.
var errTooManyFiles = errors.New("too many open files")
