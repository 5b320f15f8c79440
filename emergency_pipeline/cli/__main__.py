from emergency_pipeline.cli import main

raise SystemExit(main())
