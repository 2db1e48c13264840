from quilt_llava.cli import main

if __name__ == "__main__":
    main()
