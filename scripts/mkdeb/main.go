// Command mkdeb builds veil's Debian packages from a release build (see
// package packaging); scripts/package.sh builds the binaries and runs it.
//
//	go run ./scripts/mkdeb --version 1.4.0 --veil dist/1.4.0/veil --veil-hq dist/1.4.0/veil-hq --models models/files --out dist/1.4.0
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/veil-edge/veil/packaging"
)

func main() {
	var o packaging.Options
	flag.StringVar(&o.Version, "version", "", "release version, MAJOR.MINOR.PATCH (required); the binaries must be stamped with it")
	flag.StringVar(&o.MinFrom, "min-from", "", "the release manifest's min_from (default: --version)")
	flag.StringVar(&o.Veil, "veil", "", "the veil binary (required)")
	flag.StringVar(&o.VeilHQ, "veil-hq", "", "the veil-hq binary (required)")
	flag.StringVar(&o.Models, "models", "models/files", "directory of verified model files (veil models fetch)")
	flag.StringVar(&o.Repo, "repo", ".", "the repository root")
	flag.StringVar(&o.Out, "out", "dist", "directory to write the packages to")
	flag.StringVar(&o.Maintainer, "maintainer", packaging.DefaultMaintainer, "the packages' Maintainer field")
	flag.StringVar(&o.Revision, "revision", "", "source revision for the changelog (e.g. a git commit)")
	flag.Parse()
	if o.Version == "" || o.Veil == "" || o.VeilHQ == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	p, err := packaging.Build(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkdeb: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(p.Veil)
	fmt.Println(p.VeilHQ)
}
