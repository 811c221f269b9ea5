from v6kube.cli import main

main()
