package main

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("chromium"), chromedp.NoSandbox, chromedp.DisableGPU)
	actx, c1 := chromedp.NewExecAllocator(context.Background(), opts...)
	defer c1()
	ctx, c2 := chromedp.NewContext(actx, chromedp.WithLogf(func(f string, a ...any) { fmt.Printf(f+"\n", a...) }))
	defer c2()
	step := func(name string, a chromedp.Action[chromedp.Void]) {
		t := time.Now()
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := chromedp.Do(tctx, a)
		fmt.Println(name, err, time.Since(t))
	}
	fmt.Println("start", chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)))
	step("nav", chromedp.Navigate("http://127.0.0.1:18080/"))
	step("wait user", chromedp.WaitVisible(chromedp.CSS("#user")))
	step("keys", chromedp.SendKeys(chromedp.CSS("#user"), "alice"))
	step("keys2", chromedp.SendKeys(chromedp.CSS("#password"), "alice-password"))
	step("submit", chromedp.Submit(chromedp.CSS("#password")))
	step("wait card", chromedp.WaitVisible(chromedp.CSS("#status-card")))
	txt, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
	fmt.Println(txt, err)
	loc, err := chromedp.Run(ctx, chromedp.Location())
	fmt.Println(loc, err)
}
