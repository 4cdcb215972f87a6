// Command keysdoc writes docs/config-keys.md from internal/config's key table
// (run through `go generate ./internal/config`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/pgnoded/pgnoded/internal/config"
)

func main() {
	out := flag.String("o", "docs/config-keys.md", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, []byte(config.RenderKeysDoc()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "keysdoc:", err)
		os.Exit(1)
	}
}
