"""``python -m deposit_token.audit index|verify --rpc-url URL --token ADDRESS ...``: the indexer without ape
(implemented in ``deposit_token.cli.audit._standalone``)."""

from deposit_token.cli.audit._standalone import main

if __name__ == "__main__":
    main()
