from odetx.cli.app import main

main()
