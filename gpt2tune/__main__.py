from gpt2tune.cli import main

raise SystemExit(main())
