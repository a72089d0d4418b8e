// Package dashboard is head office's web dashboard: footfall from the shop
// boxes' reports (hq/store), behind the web package's login and sessions.
//
// Pages and routes (all but the public ones need a session: pages redirect
// to /login, the CSV and the APIs answer 401):
//
//	GET  /                the dashboard for a period                session
//	GET  /export.csv      store,camera,line,bucket_start,in,out   session (401)
//	GET  /api/totals      the same totals as JSON                  session (401)
//	GET  /api/devices     the devices as JSON                      session (401)
//	GET  /login, POST /login, POST /logout                         web's
//	GET  /static/veil.css, /static/dashboard.css                   public
//	     /healthz         Options.Health                           public
//	GET  /metrics         Options.Metrics                          public
//	     Dashboard.HandlePublic, Dashboard.Handle                  as mounted
//
// The dashboard page, the CSV and /api/totals take the same query
// parameters (see parseParams): period (today, yesterday, 7d, 30d, custom
// with from and to as YYYY-MM-DD, UTC, to inclusive; default 7d), bucket
// (hour or day; default day), store and camera (filters; default all). A
// bad or unknown parameter gets 400 with a message naming it and the
// allowed values. A period is at most 400 days, or 31 with hour buckets.
//
// The page shows, for the period: the totals in and out against the
// previous period of equal length; the stores ranked by people in, each
// against its previous period (absolute and %, "new" when it was 0), with
// a chart of the stores side by side; a chart per store and per camera by
// hour or day; and the devices (of the store filter, if any) with their
// status, last report and reports, marking as stale those with no report
// for Options.StaleAfter or none at all.
// Charts are inline SVG drawn on the server, each bucket a
// <g class="bucket" data-bucket="RFC 3339 start" data-in="…" data-out="…">
// with a <title> tooltip and a bar each for in and out (the stores chart
// has data-store instead of data-bucket). The page uses no script, so it
// keeps web's Content-Security-Policy.
//
// The CSV has a header row and then exactly what store.Totals returns for
// the query, times in RFC 3339 UTC.
package dashboard
