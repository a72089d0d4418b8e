// Package browsertest starts a real headless Chromium for tests (chromedp):
// the operator's live view, the consent pages and head office's dashboard.
package browsertest

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/veil-edge/veil/testkit/testenv"
)

// Chromium finds Debian's chromium, or skips the test (fails it under
// CI=true).
func Chromium(tb testing.TB) string {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		bin = "/usr/bin/chromium"
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Missing(tb, "chromium is not installed (apt-get install chromium)")
		}
	}
	return bin
}

// Open starts headless chromium bin, with its own profile and without
// background traffic, for at most d; extra adds options (a window size, an
// autoplay policy). The returned function closes it.
func Open(tb testing.TB, bin string, d time.Duration, extra ...chromedp.ExecAllocatorOption) (context.Context, func()) {
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	bctx, tcancel := context.WithTimeout(bctx, d)
	return bctx, func() {
		if err := chromedp.Cancel(bctx); err != nil && !errors.Is(err, context.Canceled) {
			tb.Logf("closing chromium: %v", err)
		}
		tcancel()
		bcancel()
		acancel()
	}
}
