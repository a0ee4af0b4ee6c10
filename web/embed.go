// Package web holds the studio page and the embeddable JavaScript publish client, embedded
// into the livegate binary.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Files returns the studio files (index.html, studio.js, client.js, style.css) rooted at the
// static directory, ready for http.FileServerFS.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only on an invalid path, and "static" is a valid one.
		panic(err)
	}
	return sub
}
