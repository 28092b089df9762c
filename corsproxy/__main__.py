from corsproxy.cli import main

raise SystemExit(main())
